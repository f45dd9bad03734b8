#!/usr/bin/env python3
"""Parses a Prometheus text exposition (stdin) with prometheus_client's own
parser, the one Prometheus-compatible tools use, and prints every sample as
`name{k="v",...} value`, labels sorted. Exit 3 when prometheus_client is not
installed (the caller reports SKIP), 1 when the text does not parse."""
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit(3)

text = sys.stdin.read()
try:
    families = list(text_string_to_metric_families(text))
except Exception as e:  # noqa: BLE001 - any parse failure is the answer
    print(f"parse error: {e}", file=sys.stderr)
    sys.exit(1)

helps = {f.name: f for f in families}
for f in families:
    if not f.documentation:
        print(f"family without HELP: {f.name}", file=sys.stderr)
        sys.exit(1)
    for s in f.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value!r}")
print(f"# families {len(helps)}")
