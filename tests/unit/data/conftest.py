"""Fixtures of the data tests: a loopback HTTP server and tiny archives and folder trees.

The archives follow the official MVTec AD and VisA layouts with 32x32 images, so every code path
of the real datasets runs in milliseconds and without network access beyond 127.0.0.1.
"""

from __future__ import annotations

import io
import socket
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

IMAGE_SIZE = 32
MVTEC_LAYOUT = {  # (split, defect type) -> number of images, per category
    ("train", "good"): 3,
    ("test", "good"): 2,
    ("test", "crack"): 2,
    ("test", "hole"): 1,
}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep urllib from sending loopback requests to a proxy set in the environment."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def image_bytes(seed: int, fmt: str = "PNG", size: int = IMAGE_SIZE) -> bytes:
    """A random RGB image of ``size`` x ``size`` pixels encoded as ``fmt``."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def mask_bytes(seed: int, size: int = IMAGE_SIZE, value: int = 255) -> bytes:
    """A PNG mask with a small square of ``value`` at a random place, 0 elsewhere."""
    row, col = np.random.default_rng(seed).integers(0, size - 4, 2)
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[row : row + 4, col : col + 4] = value
    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, format="PNG")
    return buffer.getvalue()


def write_tar(path: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` (archive name -> content) to a tar, compressed after ``path``'s suffix."""
    mode = {".xz": "w:xz", ".gz": "w:gz"}.get(path.suffix, "w")
    with tarfile.open(path, mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def mvtec_files(categories: tuple[str, ...], prefix: str = "") -> dict[str, bytes]:
    """Files of a miniature MVTec AD archive: ``<category>/{train,test,ground_truth}/...``."""
    files = {f"{prefix}license.txt": b"CC BY-NC-SA 4.0"}
    seed = 0
    for category in categories:
        for (split, defect), count in MVTEC_LAYOUT.items():
            for index in range(count):
                seed += 1
                files[f"{prefix}{category}/{split}/{defect}/{index:03d}.png"] = image_bytes(seed)
                if defect != "good":
                    mask = f"{prefix}{category}/ground_truth/{defect}/{index:03d}_mask.png"
                    files[mask] = mask_bytes(seed)
    return files


def visa_files(categories: tuple[str, ...]) -> dict[str, bytes]:
    """Files of a miniature VisA archive with its ``split_csv/1cls.csv``.

    Per category: 4 normal images (2 train, 2 test) and 2 anomalous ones whose masks hold the
    value 3 (VisA masks are not 0/255) - the writer must binarize them.
    """
    files: dict[str, bytes] = {}
    rows = ["object,split,label,image,mask"]
    for offset, category in enumerate(categories):
        base = f"{category}/Data"
        for index in range(4):
            name = f"{base}/Images/Normal/{index:04d}.JPG"
            files[name] = image_bytes(100 * offset + index, "JPEG")
            rows.append(f"{category},{'train' if index < 2 else 'test'},normal,{name},")
        for index in range(2):
            name = f"{base}/Images/Anomaly/{index:03d}.JPG"
            mask = f"{base}/Masks/Anomaly/{index:03d}.png"
            files[name] = image_bytes(100 * offset + 50 + index, "JPEG")
            files[mask] = mask_bytes(index, value=3)
            rows.append(f"{category},test,anomaly,{name},{mask}")
    files["split_csv/1cls.csv"] = ("\n".join(rows) + "\n").encode()
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` (relative name -> content) below ``root``."""
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.fixture
def make_tar() -> Callable[[Path, dict[str, bytes]], Path]:
    """``write_tar`` for tests that build their own archives."""
    return write_tar


@pytest.fixture
def make_image() -> Callable[..., bytes]:
    """``image_bytes`` for tests that need image files: ``make_image(seed, fmt, size)``."""
    return image_bytes


@pytest.fixture
def mvtec_archive(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``mvtec_archive(categories, suffix=".tar.xz")`` -> path of a miniature archive."""

    def build(categories: tuple[str, ...] = ("bottle", "cable"), suffix: str = ".tar.xz") -> Path:
        return write_tar(tmp_path / f"mvtec{suffix}", mvtec_files(categories))

    return build


@pytest.fixture
def visa_archive(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``visa_archive(categories)`` -> path of a miniature VisA tar."""

    def build(categories: tuple[str, ...] = ("candle", "pcb1")) -> Path:
        return write_tar(tmp_path / "VisA.tar", visa_files(categories))

    return build


@pytest.fixture
def folder_tree(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``folder_tree(categories)`` -> root of a user tree in the MVTec layout."""

    def build(categories: tuple[str, ...] = ("widget", "gadget")) -> Path:
        return write_tree(tmp_path / "user_data", mvtec_files(categories))

    return build


@dataclass
class FileServer:
    """Serves ``files`` (URL path -> bytes) on 127.0.0.1 with HTTP Range support.

    Attributes:
        files: What is served, by path (e.g. "/mvtec.tar.xz").
        requests: (path, Range header or None) of every request, in order.
        drops: The next ``drops`` responses send half their body, then close the connection.
        ignore_range: Answer Range requests with the whole file (status 200).
    """

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    drops: int = 0
    ignore_range: bool = False
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            range_header = self.headers.get("Range")
            state.requests.append((self.path, range_header))
            data = state.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            if range_header and not state.ignore_range:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_error(416)
                    return
            body = data[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.drops > 0:
                state.drops -= 1
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def http_server() -> Iterator[FileServer]:
    """A ``FileServer`` running in a thread on 127.0.0.1 (a free port) for one test."""
    state = FileServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()
