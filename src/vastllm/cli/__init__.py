"""The ``vastllm`` command: the project's playbooks through ansible-runner, with a progress line
and readable failures, a status view of every GPU host, and a chat client for the tunnel."""
