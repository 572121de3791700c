"""A disk pool that will not mount but holds no sandbox's disk (none made yet, or all
deleted) does not stop the engine: it is set aside, named, and a new one is made."""

from __future__ import annotations

from pathlib import Path

from tests.engine.conftest import create
from tests.engine.test_review_disk_pool import (  # noqa: F401
    own_engine,
    pool_image,
)
from tests.engine_server import EngineServer


def test_an_unmountable_pool_holding_no_disk_is_set_aside_and_the_engine_starts(
    own_engine: EngineServer,  # noqa: F811
) -> None:
    image = pool_image(own_engine)
    with own_engine.client() as api:
        sandbox = create(api, autoStopInterval=0)
        assert api.delete(f"/sandbox/{sandbox['id']}").status_code == 200
    own_engine.stop()
    with open(image, "r+b") as pool:  # no XFS superblock any more
        pool.write(bytes(4096))
    own_engine.start()  # refused before: "will not start without it"
    aside = Path(f"{image}.unmountable")
    assert aside.is_file()
    with open(aside, "rb") as kept:  # the very file, not read past its first block
        assert kept.read(4096) == bytes(4096)
    assert image.is_file()  # a new pool, made and mounted
    with own_engine.client() as api:
        fresh = create(api, autoStopInterval=0)
        assert (fresh["state"], fresh.get("errorReason")) == ("started", None)
        assert api.delete(f"/sandbox/{fresh['id']}").status_code == 200
