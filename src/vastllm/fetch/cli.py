"""`python -m vastllm.fetch`: fetch, verify or repair a model directory from S3.

stdout: the result (JSON with --json). stderr: progress lines and, on failure, one error line.
Exit status: 0 done (or nothing to do), 1 failed (or --verify-only found problems), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypedDict

from pydantic import ValidationError

from vastllm.busy import busy
from vastllm.fetch.api import FetchResult, fetch, repair, verify
from vastllm.fetch.errors import FetchError, UsageError
from vastllm.fetch.layout import detect_layout
from vastllm.fetch.progress import ProgressFn, StderrProgress
from vastllm.fetch.ranged import MiB, TransferOptions
from vastllm.fetch.s3client import S3Options
from vastllm.fetch.settings import FetchSettings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


EPILOG = """\
output:  a one-line summary on stdout, or with --json an object with changed, dest, action,
         layout, bytes, extracted_bytes, seconds, sha256, sha256_verified, repaired, problems
exit:    0 done or nothing to do, 1 failed (one "error: ..." line on stderr; with --json also
         {"failed": true, "error": ...} on stdout), 2 usage error (also: no sha256 to check the
         source against, see --allow-unverified), 130 interrupted
env:     AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (or the AWS config or an
         instance profile); VASTLLM_FETCH_WORKERS, _CHUNK_MIB, _PREFETCH_CHUNKS, _ENDPOINT_URL,
         _REGION, _ADDRESSING_STYLE, _PROGRESS_SECONDS, _MAX_ATTEMPTS, _CONNECT_TIMEOUT,
         _READ_TIMEOUT set defaults for the flags; VASTLLM_FETCH_GZIP_DECODER=auto|isal|zlib
         picks the gzip inflate (auto: isal when installed, else zlib)
"""


class _SourceOptions(TypedDict):
    """What a fetch and a repair are both given from the command line."""

    sha256: str | None
    s3: S3Options
    transfer: TransferOptions
    progress: ProgressFn | None
    check: bool
    allow_unverified: bool


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so partial files are cleaned up on the way out."""


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise _Terminated


def build_parser(settings: FetchSettings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m vastllm.fetch",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
        description="Fetch a model tarball (.tar.gz/.tar.zst/.tar) or prefix from S3 into a "
        "directory, extracting while downloading; verify or repair it later.",
    )
    p.add_argument("--url", help="s3://BUCKET/KEY.tar.gz|.tar.zst|.tar or s3://BUCKET/PREFIX/")
    p.add_argument("--dest", required=True, help="target directory, e.g. /workspace/models/NAME")
    p.add_argument("--sha256", help="expected sha256 of the object as stored (tarballs)")
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="install a source with no sha256 to check against (no --sha256, no "
        "x-amz-meta-sha256, no SHA256SUMS); refused without it",
    )
    p.add_argument("--endpoint-url", default=settings.endpoint_url, help="S3-compatible endpoint")
    p.add_argument("--region", default=settings.region)
    p.add_argument(
        "--addressing-style",
        choices=["auto", "virtual", "path"],
        default=settings.addressing_style,
    )
    p.add_argument("--profile", help="AWS config profile (default: the boto credential chain)")
    p.add_argument("--workers", type=int, default=settings.workers, help="parallel ranged GETs")
    p.add_argument("--chunk-mib", type=int, default=settings.chunk_mib, help="range size in MiB")
    p.add_argument(
        "--prefetch",
        type=int,
        default=settings.prefetch_chunks,
        help="ranges buffered ahead of the extractor (0: workers + 2)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--verify-only", action="store_true", help="check files against the marker, no network"
    )
    mode.add_argument(
        "--repair", action="store_true", help="verify, then re-fetch only damaged files"
    )
    p.add_argument("--quick", action="store_true", help="with --verify-only: sizes, no sha256")
    p.add_argument("--force", action="store_true", help="replace a dest not installed by us")
    p.add_argument(
        "--check",
        action="store_true",
        help="dry run (Ansible check mode): report what would change, write nothing",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--progress-seconds", type=float, default=settings.progress_seconds, help=argparse.SUPPRESS
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    return p


def _human(result: dict[str, Any]) -> str:
    layout = result.get("layout", {}).get("kind", "?")
    gib = result.get("extracted_bytes", 0) / 1024**3
    if result.get("problems"):
        return f"{result['dest']}: {len(result['problems'])} problem(s): " + "; ".join(
            result["problems"][:5]
        )
    return (
        f"{result.get('action', '?')}: {result['dest']} ({layout}, {gib:.2f} GiB, "
        f"changed={str(result['changed']).lower()}, {result.get('seconds', 0):.1f}s)"
    )


def _emit(args: argparse.Namespace, result: dict[str, Any]) -> None:
    print(json.dumps(result, sort_keys=True) if args.json else _human(result), flush=True)


def _run(args: argparse.Namespace, settings: FetchSettings) -> int:
    if args.workers < 1 or args.chunk_mib < 1 or args.prefetch < 0:
        raise UsageError("--workers and --chunk-mib must be >= 1, --prefetch >= 0")
    progress: ProgressFn | None = None
    if not args.quiet:
        progress = StderrProgress(interval=args.progress_seconds)
    if args.verify_only:
        started = time.monotonic()
        report = verify(args.dest, quick=args.quick, progress=progress)
        result = {
            "changed": False,
            "dest": str(Path(args.dest).absolute()),
            "action": "verified",
            "layout": detect_layout(Path(args.dest)).to_json(),
            "seconds": round(time.monotonic() - started, 3),
            "ok": report.ok,
            "bytes": report.bytes,
            "checked": report.checked,
            "missing": report.missing,
            "corrupt": report.corrupt,
            "problems": report.problems,
        }
        _emit(args, result)
        if not report.ok:
            print(
                f"error: {len(report.problems)} problem(s) in {args.dest}; "
                "run with --repair to re-fetch the damaged files",
                file=sys.stderr,
            )
            return EXIT_FAILED
        return EXIT_OK
    s3 = S3Options(
        endpoint_url=args.endpoint_url,
        region=args.region,
        addressing_style=args.addressing_style,
        profile=args.profile,
        max_attempts=settings.max_attempts,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
    )
    source = _SourceOptions(
        sha256=args.sha256,
        s3=s3,
        transfer=TransferOptions(
            workers=args.workers, chunk_size=args.chunk_mib * MiB, prefetch=args.prefetch
        ),
        progress=progress,
        check=args.check,
        allow_unverified=args.allow_unverified,
    )
    outcome: FetchResult
    if not args.repair and not args.url:
        raise UsageError("--url is required (except with --verify-only or --repair)")
    with busy("fetch"):  # the idle watcher never stops the host under a fetch
        if args.repair:
            outcome = repair(args.url, args.dest, **source)
        else:
            outcome = fetch(args.url, args.dest, force=args.force, **source)
    _emit(args, outcome.to_json())
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    try:
        settings = FetchSettings()
    except ValidationError as e:
        fields = ", ".join("VASTLLM_FETCH_" + str(err["loc"][0]).upper() for err in e.errors())
        print(f"error: invalid environment setting(s): {fields}", file=sys.stderr)
        return EXIT_USAGE
    args = build_parser(settings).parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="vastllm.fetch: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run(args, settings)
    except UsageError as e:
        return _fail(args, e, EXIT_USAGE)
    except FetchError as e:
        return _fail(args, e, EXIT_FAILED)
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        return _fail(args, FetchError(f"cannot write{where}: {e.strerror or e}"), EXIT_FAILED)
    except KeyboardInterrupt:
        return _fail(args, FetchError("interrupted; partial files removed"), EXIT_INTERRUPTED)
    except Exception as e:  # last resort: still one line, no traceback (details with -v)
        logging.getLogger("vastllm.fetch").info("unexpected error", exc_info=True)
        return _fail(args, FetchError(f"unexpected {type(e).__name__}: {e}"), EXIT_FAILED)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fail(args: argparse.Namespace, error: FetchError, code: int) -> int:
    message = " ".join(str(error).split())  # one line, always
    if args.json:
        print(
            json.dumps(
                {
                    "changed": False,
                    "failed": True,
                    "dest": args.dest,
                    "error": message,
                    "error_type": type(error).__name__,
                },
                sort_keys=True,
            ),
            flush=True,
        )
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code
