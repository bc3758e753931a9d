import gc

from gate.app import Gate
from gate.config import Settings, parse_upstream
from gate.server import YOUNG_COLLECTION_THRESHOLD, serving_app


def test_a_serving_process_collects_young_objects_less_often_than_python_does() -> None:
    """With Python's threshold of 700 the requests in flight alone set off a collection every few requests."""
    before = gc.get_threshold()
    try:
        app = serving_app(Settings(upstream=parse_upstream("http://127.0.0.1:9")))
        assert isinstance(app, Gate)
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, before[1], before[2])
        assert before[0] < YOUNG_COLLECTION_THRESHOLD
    finally:
        gc.set_threshold(*before)
