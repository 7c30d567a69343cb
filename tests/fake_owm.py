"""A fake OpenWeatherMap API on 127.0.0.1 serving OWM-shaped bodies and the real error bodies.

Cities (by id): 2950159 and 2643743 answer 200; 404404 answers 404; 503503 answers 503 twice then 200;
500500 always 500; a request with the wrong appid answers 401. ``rate_limit_next`` makes the next
N requests answer 429 with ``Retry-After: 1``. Each city's ``dt`` advances only when ``advance()`` is
called, as the real API updates at most every 10 minutes.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import orjson

API_KEY = "test-key-5f0c1d2e3a4b5c6d7e8f9a0b1c2d3e4f"
NAMES = {2950159: ("Berlin", "DE", 52.52, 13.41), 2643743: ("London", "GB", 51.51, -0.13),
         503503: ("Flaky", "XX", 10.0, 10.0)}  # fmt: skip


def body(city_id: int, dt: int) -> dict[str, object]:
    name, country, lat, lon = NAMES[city_id]
    return {
        "coord": {"lon": lon, "lat": lat},
        "weather": [{"id": 800, "main": "Clear", "description": "clear sky", "icon": "01d"}],
        "base": "stations",
        "main": {"temp": 5.0 + dt % 7, "feels_like": 3.0, "pressure": 1015, "humidity": 70},
        "visibility": 10000,
        "wind": {"speed": 3.5, "deg": 200},
        "clouds": {"all": 0},
        "dt": dt,
        "sys": {"country": country, "sunrise": dt - 20000, "sunset": dt + 20000},
        "timezone": 3600,
        "id": city_id,
        "name": name,
        "cod": 200,
    }


class FakeOwm:
    def __init__(self, dt0: int) -> None:
        self.dt = dt0
        self.requests: list[str] = []
        self.rate_limit_next = 0
        self.flaky_failures: dict[int, int] = {503503: 2}
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # http.server's naming
                status, payload, headers = fake.answer(self.path)
                data = orjson.dumps(payload)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def advance(self, seconds: int = 600) -> None:
        with self.lock:
            self.dt += seconds

    def answer(self, path: str) -> tuple[int, object, dict[str, str]]:
        url = urlparse(path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self.lock:
            self.requests.append(path)
            if query.get("appid") != API_KEY:
                message = "Invalid API key. Please see https://openweathermap.org/faq#error401 for more info."
                return 401, {"cod": 401, "message": message}, {}
            if self.rate_limit_next > 0:
                self.rate_limit_next -= 1
                message = (
                    "Your account is temporary blocked due to exceeding of requests limitation of your "
                    "subscription type."
                )
                return 429, {"cod": 429, "message": message}, {"Retry-After": "1"}
            if url.path == "/data/2.5/group":
                ids = [int(i) for i in query["id"].split(",")]
                items = [body(i, self.dt) for i in ids if i in NAMES]
                return 200, {"cnt": len(items), "list": items}, {}
            city = int(query.get("id", "0"))
            if city == 500500:
                return 500, {"cod": 500, "message": "Internal error"}, {}
            if self.flaky_failures.get(city, 0) > 0:
                self.flaky_failures[city] -= 1
                return 503, {"cod": 503, "message": "Service Unavailable"}, {}
            if city not in NAMES:
                return 404, {"cod": "404", "message": "city not found"}, {}
            return 200, body(city, self.dt), {}

    def __enter__(self) -> FakeOwm:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
