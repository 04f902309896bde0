"""A provider's HTTP API (an ESP, Twilio) as a real local server that misbehaves on purpose.

Each request gets the next planned answer, then the provider's normal one: `api.plan(DROP)` cuts the
connection once the request has been read (the provider got it, the answer is lost), `api.plan(HANG)`
never answers, `api.plan((503, {...}))` answers that status and JSON. `requests` counts what arrived.
"""

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

DROP = "drop"
HANG = "hang"
NOT_JSON = "not json"  # a 200 whose body cannot be read

Answer = tuple[int, dict | list] | str


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(self.body.decode()).items()}


class ProviderApi:
    def __init__(self, normal: Callable[[Request], tuple[int, dict | list]]) -> None:
        self.normal = normal
        self.requests: list[Request] = []
        self._plan: list[Answer] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    def plan(self, *answers: Answer) -> None:
        with self._lock:
            self._plan.extend(answers)

    def _next(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            return self._plan.pop(0) if self._plan else self.normal(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer = api._next(Request("POST", self.path, dict(self.headers), body))
                if answer == DROP:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if answer == HANG:
                    self.close_connection = True
                    api._released.wait(60)  # the client gives up long before
                    return
                status, payload = (200, None) if answer == NOT_JSON else answer
                content = b"<html>Thank you</html>" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if payload is None else "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format, *args) -> None:  # keep the test output clean
                pass

        return Handler

    def __enter__(self) -> "ProviderApi":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
