"""``python -m vastllm.idle``: run the idle watcher (settings from ``VASTLLM_IDLE_*``)."""

from __future__ import annotations

import logging
import sys
import time

from pydantic import ValidationError

from vastllm.busy import marks
from vastllm.idle import metrics, vast
from vastllm.idle.budget import Budget, PriceUnreadable, read_price
from vastllm.idle.settings import IdleSettings
from vastllm.idle.watcher import Watcher, run

EXIT_OK = 0
EXIT_USAGE = 2


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s vastllm-idle: %(message)s",
                        stream=sys.stderr)
    log = logging.getLogger("vastllm.idle")
    try:
        settings = IdleSettings()
        if settings.stop_minutes == 0 and settings.max_spend_usd == 0:
            raise vast.Unconfigured(
                "nothing to watch: VASTLLM_IDLE_STOP_MINUTES and VASTLLM_IDLE_MAX_SPEND_USD are 0")
        price = read_price(settings.price_file) if settings.max_spend_usd > 0 else 0.0
        instance = vast.instance_id(settings)
        actions, module = vast.client(settings)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
        log.error("bad settings (VASTLLM_IDLE_*): %s", fields)
        return EXIT_USAGE
    except (vast.Unconfigured, PriceUnreadable) as exc:
        log.error("%s", exc)
        return EXIT_USAGE

    def act() -> None:
        if settings.action == "destroy":
            actions.destroy(instance)
        else:
            actions.stop(instance)

    watcher = None
    if settings.stop_minutes > 0:
        watcher = Watcher(
            stop_seconds=settings.stop_minutes * 60,
            action=settings.action,
            read_metrics=lambda: metrics.read(settings.metrics_url, settings.metrics_timeout),
            read_marks=lambda: marks(settings.busy_dir),
            act=act,
            act_errors=(module.VastApiError,),
        )
        log.info("watching instance %s: %s after %g idle minutes (poll every %gs, %s)",
                 instance, settings.action, settings.stop_minutes, settings.poll_seconds,
                 settings.metrics_url)
    budget = None
    if settings.max_spend_usd > 0:
        budget = Budget(
            limit_usd=settings.max_spend_usd,
            price_per_hour=price,
            state_file=settings.spend_state_file,
            instance_id=instance,
            stop=lambda: actions.stop(instance),
            stop_errors=(module.VastApiError,),
        )
        log.info("budget of instance %s: $%.4g at $%.4g/h, $%.4g spent so far (%s)", instance,
                 settings.max_spend_usd, price, budget.state.spent_usd,
                 settings.spend_state_file)
    run(watcher, budget, settings.poll_seconds)
    while True:  # done: stay up quietly so the supervisor does not start a second watcher
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
