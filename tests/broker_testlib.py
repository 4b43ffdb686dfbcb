"""What waits in the embedded broker (kombu's SQLAlchemy transport), per queue: for tests that check where
tasks were routed (`core.routing`) without a worker.

    queued_by_queue(svc.settings)      # {"simtrain": 1, "simtrain.gpu": 4}
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = ["queued_by_queue"]


def queued_by_queue(settings: Any) -> dict[str, int]:
    """Message counts by queue name in the embedded broker (`sqla+<url>`); {} before any was sent."""
    url = settings.broker_url
    assert url.startswith("sqla+"), f"not the embedded broker: {url}"
    engine = sa.create_engine(url[len("sqla+") :])
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("kombu_message"):
                return {}
            rows = conn.execute(
                sa.text(
                    "SELECT q.name, count(*) FROM kombu_message m JOIN kombu_queue q ON m.queue_id = q.id "
                    "GROUP BY q.name"
                )
            )
            return {str(name): int(n) for name, n in rows}
    finally:
        engine.dispose()
