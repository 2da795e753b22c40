#!/bin/sh
# Lets the image take both forms of arguments:
#   <image> [serve options]            -> qwenbox serve --host 0.0.0.0 [options]
#   <image> serve|plan|info|... args   -> qwenbox serve|plan|info|... args
# The second is what `qwenbox plan --format docker|compose` writes. --host 0.0.0.0 is added only
# when no --host is given (qwenbox refuses a repeated option). exec: qwenbox gets the signals.
set -e
case "${1:-}" in
  "" | -*)
    for arg in "$@"; do
      case "$arg" in --host | --host=*) exec /usr/local/bin/qwenbox serve "$@" ;; esac
    done
    exec /usr/local/bin/qwenbox serve --host 0.0.0.0 "$@"
    ;;
  *) exec /usr/local/bin/qwenbox "$@" ;;
esac
