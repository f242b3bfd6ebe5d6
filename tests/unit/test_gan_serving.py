"""A request for N samples: what `/invocations` accepts for a generator, and what it refuses."""

from __future__ import annotations

import pytest

from neuroflow.serving.generate import MAX_SAMPLES, GenerateRequestError, parse_generate


def test_n_and_an_optional_seed() -> None:
    assert parse_generate(b'{"n": 4, "seed": 7}') == (4, 7)
    n, seed = parse_generate(b'{"n": 2}')
    assert n == 2 and seed >= 0  # a fresh seed, returned so the images can be drawn again


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"n": 0}', '"n" must be an integer'),
        (f'{{"n": {MAX_SAMPLES + 1}}}'.encode(), '"n" must be an integer'),
        (b'{"n": 2.5}', '"n" must be an integer'),
        (b'{"n": true}', '"n" must be an integer'),
        (b'{"n": 3, "seed": -1}', '"seed" must be a non-negative integer'),
        (b'{"rows": [[1, 2]]}', 'a generator takes JSON {"n": N'),
        (b"n=3", "not JSON"),
    ],
)
def test_bad_requests_say_what_to_send(body: bytes, says: str) -> None:
    with pytest.raises(GenerateRequestError) as caught:
        parse_generate(body)
    assert says in str(caught.value)
