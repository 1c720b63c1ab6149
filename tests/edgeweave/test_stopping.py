"""Stop strings on a stream: the streamed text is exactly the batch answer cut at the first stop."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edgeweave.generation.stopping import StopText

alphabet = st.sampled_from("ab\n}")


@given(
    pieces=st.lists(st.text(alphabet, max_size=4), max_size=30),
    stops=st.lists(st.text(alphabet, min_size=1, max_size=3), max_size=3),
)
def test_streamed_equals_cut_text(pieces: list[str], stops: list[str]) -> None:
    full = "".join(pieces)
    hits = [full.find(s) for s in stops if s in full]
    want = full[: min(hits)] if hits else full
    stopper = StopText(stops)
    out = ""
    for p in pieces:
        out += stopper.push(p)
        assert want.startswith(out)  # nothing released is ever taken back
    out += stopper.finish()
    assert out == want
    assert stopper.stopped == bool(hits)


def test_holds_back_only_a_possible_stop_prefix() -> None:
    s = StopText(["</end>"])
    assert s.push("hello <") == "hello "
    assert s.push("/e") == ""
    assert s.push("x") == "</ex"
    assert s.push("</end> tail") == ""
    assert s.stopped
