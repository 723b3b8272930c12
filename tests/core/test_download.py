"""Downloads over real HTTP from a local Hub-protocol server, with faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.core.download import DownloadError, HubDownloader, Progress
from app.core.engine import CancelToken
from app.core.errors import CancelledError
from tests.hub_server import FakeHub, Faults

ROOT = Path(__file__).resolve().parents[2]
REPO = "second-state/StarCoder2-3B-GGUF"
NAME = "starcoder2-3b-Q4_K_M.gguf"


@pytest.fixture()
def model_bytes(tiny_model: Path) -> bytes:
    return tiny_model.read_bytes()


def downloader(hub: FakeHub, tmp_path: Path) -> HubDownloader:
    return HubDownloader(cache_dir=tmp_path / "hub", endpoint=hub.endpoint)


def test_download_verifies_and_uses_the_hf_cache_layout(tmp_path: Path, model_bytes: bytes) -> None:
    with FakeHub() as hub:
        entry = hub.add(REPO, NAME, model_bytes)
        seen: list[Progress] = []
        path = downloader(hub, tmp_path).download(REPO, NAME, progress=seen.append)
    assert path.read_bytes() == model_bytes
    assert path.is_symlink() and path.resolve().name == entry.sha256
    assert (tmp_path / "hub" / "models--second-state--StarCoder2-3B-GGUF" / "refs" / "main").read_text()
    assert seen and seen[-1].downloaded == seen[-1].total == len(model_bytes)


def test_dropped_connection_resumes_with_range(tmp_path: Path, model_bytes: bytes) -> None:
    with FakeHub() as hub:
        hub.add(REPO, NAME, model_bytes, Faults(drop_after=200_000, drop_times=2))
        path = downloader(hub, tmp_path).download(REPO, NAME)
        ranges = [r for method, _p, r in hub.requests if method == "GET" and r]
    assert path.read_bytes() == model_bytes
    assert ranges and ranges[0].startswith("bytes=") and int(ranges[0][6:-1]) > 0


def test_corruption_is_caught_by_sha256_and_never_lands(tmp_path: Path, model_bytes: bytes) -> None:
    with FakeHub() as hub:
        hub.add(REPO, NAME, model_bytes, Faults(corrupt=True))
        d = downloader(hub, tmp_path)
        with pytest.raises(DownloadError, match="sha256"):
            d.download(REPO, NAME)
    assert not list((tmp_path / "hub").rglob("*.gguf"))
    assert not list((tmp_path / "hub").rglob("*.incomplete"))


def test_wrong_size_and_missing_file(tmp_path: Path, model_bytes: bytes) -> None:
    with FakeHub() as hub:
        hub.add(REPO, NAME, model_bytes, Faults(short_by=1000))
        with pytest.raises(DownloadError):
            downloader(hub, tmp_path).download(REPO, NAME)
        with pytest.raises(DownloadError, match="not found"):
            downloader(hub, tmp_path).download(REPO, "nope.gguf")
    assert not list((tmp_path / "hub").rglob("*.gguf"))


def test_cancel_leaves_nothing_usable_then_resumes(tmp_path: Path, model_bytes: bytes) -> None:
    with FakeHub() as hub:
        entry = hub.add(REPO, NAME, model_bytes, Faults(throttle_bps=400_000))
        d = downloader(hub, tmp_path)
        cancel = CancelToken()

        def on_progress(p) -> None:
            if p.downloaded > 100_000:
                cancel.cancel()

        with pytest.raises(CancelledError):
            d.download(REPO, NAME, progress=on_progress, cancel=cancel)
        partial = d.partial_path(d.resolve(REPO, NAME))
        assert partial.is_file() and 0 < partial.stat().st_size < len(model_bytes)
        assert not list((tmp_path / "hub").rglob("*.gguf"))
        entry.faults.throttle_bps = None
        path = d.download(REPO, NAME)
        ranges = [r for method, _p, r in hub.requests if method == "GET" and r]
    assert path.read_bytes() == model_bytes
    assert ranges, "the second attempt must continue with a Range request"


def test_resume_after_the_process_was_killed(tmp_path: Path, model_bytes: bytes) -> None:
    with FakeHub() as hub:
        entry = hub.add(REPO, NAME, model_bytes, Faults(throttle_bps=200_000))
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint}
        cache = tmp_path / "hub"
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "download", REPO, NAME, "--cache-dir", str(cache)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        partials: list[Path] = []
        while time.monotonic() < deadline:
            partials = [p for p in cache.rglob("*.incomplete") if p.stat().st_size > 150_000]
            if partials:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert partials, "the download never started"
        kept = partials[0].stat().st_size
        entry.faults.throttle_bps = None
        out = subprocess.run(
            [sys.executable, str(ROOT / "main.py"), "download", REPO, NAME, "--cache-dir", str(cache), "--json"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        ranges = [r for method, _p, r in hub.requests if method == "GET" and r]
    assert out.returncode == 0, out.stderr
    assert Path(json.loads(out.stdout)["path"]).read_bytes() == model_bytes
    assert ranges and int(ranges[-1][6:-1]) >= kept


def test_path_escape_is_refused(tmp_path: Path, model_bytes: bytes) -> None:
    with FakeHub() as hub:
        hub.add(REPO, "../../evil.gguf", model_bytes)
        with pytest.raises(DownloadError, match="leave the model folder"):
            downloader(hub, tmp_path).download(REPO, "../../evil.gguf")


def test_full_disk_is_refused_before_downloading(tmp_path: Path, model_bytes: bytes, monkeypatch) -> None:
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9, 1000))
    with FakeHub() as hub:
        hub.add(REPO, NAME, model_bytes)
        with pytest.raises(DownloadError, match="not enough disk space"):
            downloader(hub, tmp_path).download(REPO, NAME)


def test_listing_gives_sizes_and_sha256(tmp_path: Path, model_bytes: bytes) -> None:
    with FakeHub() as hub:
        entry = hub.add(REPO, NAME, model_bytes)
        hub.add(REPO, "README.md", b"hello")
        files = downloader(hub, tmp_path).list_files(REPO)
    assert (NAME, len(model_bytes), entry.sha256) in files


def test_cli_download_errors_exit_2(tmp_path: Path) -> None:
    with FakeHub() as hub:
        hub.add(REPO, NAME, b"x")
        proc = subprocess.run(
            [sys.executable, str(ROOT / "main.py"), "download", REPO, "missing.gguf", "--cache-dir", str(tmp_path)],
            env={**os.environ, "HF_ENDPOINT": hub.endpoint}, capture_output=True, text=True, timeout=60,
        )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("starpad: error:") and "not found" in proc.stderr
