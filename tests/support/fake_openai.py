"""A local OpenAI-compatible server for tests and benchmarks (the real API is unreachable here).

Implements `/v1/chat/completions` (text and top logprobs, `n` choices), `/v1/files` (upload, retrieve, content
download), `/v1/batches` (create, retrieve) and `/v1/fine_tuning/jobs` (create, list, retrieve, events, cancel), with
fault injection and request counting. Replies are deterministic functions of the request, so reruns can be compared.

Faults (`server.faults`, consumed one per chat request, in order): `"429"` (with Retry-After), `"500"`,
`"timeout"` (sleeps `timeout_sleep_s` before answering), `"truncated"` (half a JSON body), `"malformed"` (a JSON
body without choices), `"400"`, or `{"status": N, "headers": {...}}` (any status with any headers).
Batch faults: `batch_error_rows` (the first N rows of the next batch go to the error file with HTTP 500),
`expire_next_batch` (the next batch expires with only its first half answered), `batch_polls` (retrieves needed
before a batch completes).
Fine-tuning: a job moves validating_files -> queued -> running (one step per retrieve) and succeeds after
`ft_polls` retrieves in total (read at every retrieve, so a test can make a slow job finish); `ft_fail_next`
(a message) makes the next job created fail with that message; `ft_faults` (consumed one per fine-tuning GET)
injects `"429"` or `"500"` replies while a client polls; `ft_stall` ("queued"/"running") holds every job in that
status (a slow job) until it is set back to None.
"""

from __future__ import annotations

import collections
import json
import re
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.fake_chat import chat_reply, count_tokens

API_KEY = "sk-test-SECRET-0123456789abcdef"


class FakeOpenAI:
    def __init__(self, api_key: str = API_KEY):
        self.api_key = api_key
        self.lock = threading.Lock()
        self.counts: collections.Counter = collections.Counter()
        self.faults: collections.deque = collections.deque()
        self.timeout_sleep_s = 1.0
        self.retry_after = "0.05"
        self.batch_polls = 1
        self.batch_error_rows = 0
        self.expire_next_batch = False
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.ft_polls = 3
        self.ft_fail_next: str | None = None
        self.ft_stall: str | None = None
        self.ft_faults: collections.deque = collections.deque()
        self.tokens = collections.Counter()
        self.seen_auth: list[str] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def reset_counts(self) -> None:
        with self.lock:
            self.counts.clear()
            self.tokens.clear()

    # --- state changes ---------------------------------------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        self.counts[f"_ids_{prefix}"] += 1
        return f"{prefix}-{self.counts[f'_ids_{prefix}']:04d}"

    def _add_file(self, data: bytes, filename: str, purpose: str) -> dict:
        fid = self._new_id("file")
        meta = {
            "id": fid,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        self.files[fid] = {"meta": meta, "data": data}
        return meta

    def _advance_batch(self, b: dict) -> None:
        if b["status"] in ("completed", "expired", "failed", "cancelled"):
            return
        b["_polls"] += 1
        if b["_polls"] < self.batch_polls:
            b["status"] = "in_progress"
            return
        lines = [json.loads(x) for x in self.files[b["input_file_id"]]["data"].decode().splitlines() if x.strip()]
        out, err = [], []
        n_run = len(lines) // 2 if b["_expire"] else len(lines)
        for i, line in enumerate(lines[:n_run]):
            if i < b["_error_rows"]:
                err.append(
                    {
                        "id": f"req-{i}",
                        "custom_id": line["custom_id"],
                        "response": {
                            "status_code": 500,
                            "request_id": f"r{i}",
                            "body": {
                                "error": {"message": "server error", "type": "server_error", "code": "server_error"}
                            },
                        },
                        "error": None,
                    }
                )
                continue
            body = chat_reply(line["body"])
            self.tokens["batch_prompt"] += body["usage"]["prompt_tokens"]
            self.tokens["batch_completion"] += body["usage"]["completion_tokens"]
            self.counts["batch_rows"] += 1
            out.append(
                {
                    "id": f"req-{i}",
                    "custom_id": line["custom_id"],
                    "response": {"status_code": 200, "request_id": f"r{i}", "body": body},
                    "error": None,
                }
            )
        if out:
            b["output_file_id"] = self._add_file(
                "".join(json.dumps(x) + "\n" for x in out).encode(), "out.jsonl", "batch_output"
            )["id"]
        if err:
            b["error_file_id"] = self._add_file(
                "".join(json.dumps(x) + "\n" for x in err).encode(), "err.jsonl", "batch_output"
            )["id"]
        b["status"] = "expired" if b["_expire"] else "completed"
        b["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}

    def _create_job(self, req: dict) -> dict:
        """A fine-tuning job as the API returns it; "auto" hyperparameters are resolved the way the API reports them."""
        method = req.get("method") or {}
        hp = dict(
            (method.get(method.get("type") or "supervised") or {}).get("hyperparameters")
            or req.get("hyperparameters")
            or {}
        )
        resolved = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8}
        hp = {k: (resolved[k] if hp.get(k, "auto") == "auto" else hp[k]) for k in resolved}
        jid = self._new_id("ftjob")
        job = {
            "id": jid,
            "object": "fine_tuning.job",
            "model": req["model"],
            "created_at": int(time.time()),
            "finished_at": None,
            "fine_tuned_model": None,
            "organization_id": "org-test",
            "result_files": [],
            "status": "validating_files",
            "validation_file": req.get("validation_file"),
            "training_file": req["training_file"],
            "hyperparameters": hp,
            "trained_tokens": None,
            "error": None,
            "seed": req.get("seed", 0),
            "suffix": req.get("suffix"),
            "metadata": req.get("metadata"),
            "method": {"type": "supervised", "supervised": {"hyperparameters": hp}},
            "_polls": 0,
            "_fail": self.ft_fail_next,
            "_events": [],
        }
        self.ft_fail_next = None
        self._job_event(job, "Validating training file: " + req["training_file"])
        self.jobs[jid] = job
        return job

    def _job_event(self, job: dict, message: str, data: dict | None = None, kind: str = "message") -> None:
        n = len(job["_events"]) + 1
        job["_events"].append(
            {
                "id": f"ftevent-{job['id']}-{n:04d}",
                "object": "fine_tuning.job.event",
                "created_at": int(time.time()),
                "level": "info",
                "message": message,
                "data": data or {},
                "type": kind,
            }
        )

    def _advance_job(self, job: dict) -> None:
        """validating_files -> queued -> running (one step per retrieve) -> succeeded/failed after ft_polls."""
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return
        if self.ft_stall:
            job["status"] = self.ft_stall
            return
        job["_polls"] += 1
        p = job["_polls"]
        if p < self.ft_polls:
            job["status"] = "queued" if p == 1 else "running"
            if p > 1:
                self._job_event(
                    job,
                    f"Step {p - 1}: training loss={2.0 / p:.3f}",
                    {"step": p - 1, "train_loss": 2.0 / p, "total_steps": None},
                    "metrics",
                )
            return
        if job["_fail"]:
            job.update(
                status="failed",
                finished_at=int(time.time()),
                error={"code": "invalid_training_file", "param": "training_file", "message": job["_fail"]},
            )
            self._job_event(job, job["_fail"])
            return
        data = self.files[job["training_file"]]["data"].decode()
        tokens = sum(
            count_tokens(m.get("content") or "") + 4
            for line in data.splitlines()
            if line.strip()
            for m in json.loads(line)["messages"]
        )
        job.update(
            status="succeeded",
            finished_at=int(time.time()),
            trained_tokens=tokens * job["hyperparameters"]["n_epochs"],
            fine_tuned_model=f"ft:{job['model']}:org-test:{job['suffix'] or ''}:{job['id'][-4:]}",
        )
        self._job_event(job, "The job has successfully completed")

    @staticmethod
    def _public(b: dict) -> dict:
        return {k: v for k, v in b.items() if not k.startswith("_")}

    # --- HTTP ------------------------------------------------------------------------------------------------
    def _handler(self):
        server = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _send(
                self,
                code: int,
                obj=None,
                raw: bytes | None = None,
                headers: dict | None = None,
                ctype="application/json",
            ):
                data = raw if raw is not None else json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout fault)
                    pass

            def _err(self, code: int, message: str, headers=None):
                self._send(code, {"error": {"message": message, "type": "error", "code": str(code)}}, headers=headers)

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _auth(self) -> bool:
                auth = self.headers.get("Authorization", "")
                given = auth.removeprefix("Bearer ").strip()
                if given != server.api_key:
                    with server.lock:
                        server.counts["unauthorized"] += 1
                    # like the real API, the message quotes the key given: the client must not echo it
                    self._err(401, f"Incorrect API key provided: {given}. You can find your API key at ...")
                    return False
                return True

            def do_POST(self):
                body = self._body()
                if not self._auth():
                    return
                path = self.path.split("?")[0]
                if path.endswith("/chat/completions"):
                    with server.lock:
                        server.counts["chat"] += 1
                        fault = server.faults.popleft() if server.faults else None
                    req = json.loads(body)
                    with server.lock:
                        server.counts[f"chat:{req.get('model')}"] += 1
                    if isinstance(fault, dict):
                        return self._err(fault["status"], "injected", headers=fault.get("headers"))
                    if fault == "malformed":
                        return self._send(200, {"id": "chatcmpl-x", "object": "chat.completion", "created": 0})
                    if fault == "429":
                        return self._err(429, "rate limited", headers={"Retry-After": server.retry_after})
                    if fault == "500":
                        return self._err(500, "internal error")
                    if fault == "400":
                        return self._err(400, "context length exceeded")
                    reply = chat_reply(req)
                    if fault == "timeout":
                        time.sleep(server.timeout_sleep_s)
                    with server.lock:
                        server.counts["chat_ok"] += 1 if fault is None else 0
                        server.tokens["prompt"] += reply["usage"]["prompt_tokens"]
                        server.tokens["completion"] += reply["usage"]["completion_tokens"]
                    data = json.dumps(reply).encode()
                    if fault == "truncated":
                        data = data[: len(data) // 2]
                    return self._send(200, raw=data)
                if path.endswith("/files"):
                    ctype = self.headers.get("Content-Type", "")
                    msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
                    data, filename, purpose = b"", "upload", "batch"
                    for part in msg.iter_parts():
                        name = part.get_param("name", header="content-disposition")
                        if name == "file":
                            data = part.get_payload(decode=True)
                            filename = part.get_filename() or filename
                        elif name == "purpose":
                            purpose = part.get_payload(decode=True).decode()
                    with server.lock:
                        server.counts["files_upload"] += 1
                        meta = server._add_file(data, filename, purpose)
                    return self._send(200, meta)
                if path.endswith("/fine_tuning/jobs"):
                    req = json.loads(body)
                    with server.lock:
                        server.counts["ft_jobs_create"] += 1
                        if req.get("training_file") not in server.files:
                            return self._err(400, f"invalid training_file: {req.get('training_file')}")
                        job = server._create_job(req)
                        pub = server._public(job)
                    return self._send(200, pub)
                m = re.search(r"/fine_tuning/jobs/([^/]+)/cancel$", path)
                if m:
                    with server.lock:
                        server.counts["ft_jobs_cancel"] += 1
                        job = server.jobs.get(m.group(1))
                        if job is None:
                            return self._err(404, "no such job")
                        if job["status"] not in ("succeeded", "failed", "cancelled"):
                            job["status"] = "cancelled"
                            server._job_event(job, "Job cancelled")
                        pub = server._public(job)
                    return self._send(200, pub)
                if path.endswith("/batches"):
                    req = json.loads(body)
                    with server.lock:
                        server.counts["batches_create"] += 1
                        if req.get("input_file_id") not in server.files:
                            return self._err(400, "unknown input file")
                        bid = server._new_id("batch")
                        b = {
                            "id": bid,
                            "object": "batch",
                            "endpoint": req["endpoint"],
                            "errors": None,
                            "input_file_id": req["input_file_id"],
                            "completion_window": req["completion_window"],
                            "status": "validating",
                            "output_file_id": None,
                            "error_file_id": None,
                            "created_at": int(time.time()),
                            "metadata": req.get("metadata"),
                            "request_counts": {"total": 0, "completed": 0, "failed": 0},
                            "_polls": 0,
                            "_expire": server.expire_next_batch,
                            "_error_rows": server.batch_error_rows,
                        }
                        server.expire_next_batch = False
                        server.batch_error_rows = 0
                        server.batches[bid] = b
                    return self._send(200, server._public(b))
                return self._err(404, f"no route {path}")

            def do_GET(self):
                if not self._auth():
                    return
                path = self.path.split("?")[0]
                m = re.search(r"/files/([^/]+)/content$", path)
                if m:
                    with server.lock:
                        server.counts["files_content"] += 1
                        f = server.files.get(m.group(1))
                    if f is None:
                        return self._err(404, "no such file")
                    return self._send(200, raw=f["data"], ctype="application/octet-stream")
                if "/fine_tuning/jobs" in path:
                    return self._fine_tuning_get(path)
                m = re.search(r"/files/([^/]+)$", path)
                if m:
                    with server.lock:
                        server.counts["files_retrieve"] += 1
                        f = server.files.get(m.group(1))
                    return self._send(200, f["meta"]) if f else self._err(404, "no such file")
                m = re.search(r"/batches/([^/]+)$", path)
                if m:
                    with server.lock:
                        server.counts["batches_retrieve"] += 1
                        b = server.batches.get(m.group(1))
                        if b is None:
                            return self._err(404, "no such batch")
                        server._advance_batch(b)
                        pub = server._public(b)
                    return self._send(200, pub)
                return self._err(404, f"no route {path}")

            def _fine_tuning_get(self, path: str):
                """List, retrieve (which advances the job) and events; `ft_faults` answer first."""
                with server.lock:
                    server.counts["ft_get"] += 1
                    fault = server.ft_faults.popleft() if server.ft_faults else None
                if fault == "429":
                    return self._err(429, "rate limited", headers={"Retry-After": server.retry_after})
                if fault == "500":
                    return self._err(500, "internal error")
                if path.endswith("/fine_tuning/jobs"):
                    with server.lock:
                        server.counts["ft_jobs_list"] += 1
                        data = [server._public(j) for j in reversed(list(server.jobs.values()))]
                    return self._send(200, {"object": "list", "data": data, "has_more": False})
                m = re.search(r"/fine_tuning/jobs/([^/]+)(/events)?$", path)
                with server.lock:
                    job = server.jobs.get(m.group(1)) if m else None
                    if job is None:
                        return self._err(404, "no such fine-tuning job")
                    if m.group(2):
                        server.counts["ft_events"] += 1
                        out = {"object": "list", "data": list(reversed(job["_events"])), "has_more": False}
                    else:
                        server.counts["ft_jobs_retrieve"] += 1
                        server._advance_job(job)
                        out = server._public(job)
                return self._send(200, out)

        return H
