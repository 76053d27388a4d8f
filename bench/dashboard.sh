#!/usr/bin/env bash
# The dashboard's apps page with 200 apps (process runtime, one replica each), loaded ten
# times in a real headless Chromium: prints Navigation Timing's load event and the time
# until the table of 200 rows is drawn (median and slowest). Needs chromium and
# chromium-driver (Debian).
#
#   bench/dashboard.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo test -p hivemind --test e2e dashboard::apps_page_load_with_200_apps -- --ignored --nocapture 2>&1 \
    | grep -E '^(FIGURES|200 apps|test result)'
