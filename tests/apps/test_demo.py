"""`edgeweave demo` runs end to end on all three backends and prints tool calls."""

from apps.smarthome.demo import describe
from tests.cli import run_cli


def test_describe_formats_tool_calls_and_passes_replies_through() -> None:
    assert describe('[{"call":"lights.dim","room":"kitchen","level":30}]') == "lights.dim(room='kitchen', level=30)"
    assert describe("You're welcome.") == "You're welcome."


def test_demo_runs_on_every_backend(device_checkpoint) -> None:  # noqa: ANN001 - fixture
    proc = run_cli("demo", timeout=600, COLUMNS="200")
    assert proc.returncode == 0, proc.stderr
    for backend in ("torch", "llamacpp", "executorch"):
        assert f"{backend} ready" in proc.stdout
    assert proc.stdout.count("lights.dim(") == 3  # the first command answered on each backend
    assert proc.stdout.count("door.lock(") == 3
