"""The idle watcher: stop (or destroy) a Vast.ai instance nobody uses.

It runs on the GPU host as a supervised service (roles/idle_stop) when
``vastllm_idle_stop_minutes`` (or ``vastllm_max_spend_usd``) > 0, so it keeps counting while the
workstation sleeps. Every poll it reads the host proxy's ``/metrics``
(:mod:`vastllm.idle.metrics`) and the busy marks (:mod:`vastllm.busy`); after ``stop_minutes``
in which no request reached the proxy, nothing was in flight and no fetch, pull or cascade ran,
it asks the Vast.ai API, once, to stop or destroy the instance (:mod:`vastllm.idle.vast`), with
the instance's own key. With ``vastllm_max_spend_usd`` it also counts what the instance spends
and stops it at the budget (:mod:`vastllm.idle.budget`). Settings: :mod:`vastllm.idle.settings`;
the loop: :mod:`vastllm.idle.watcher`. See docs/cost.md.
"""
