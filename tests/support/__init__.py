"""What the tests share and are not tests themselves: the fake OpenAI server, the browser driver, the workflow runner
and the rows the tests build their inputs from."""
