"""Runs `callmood analyze` for the measurement tools in this directory (imported by them)."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def model_option(path):
    """`--emotion-model PATH` (absolute, as callmood runs from the repository root), or none."""
    return ["--emotion-model", os.path.abspath(path)] if path else []


def analyze(binary, files, *options):
    """The JSON events of `callmood analyze OPTIONS FILES`, run from the repository root;
    exits with callmood's own message when it fails."""
    run = subprocess.run([binary, "analyze", *options, *files], cwd=ROOT,
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"callmood analyze failed:\n{run.stderr}")
    return [json.loads(line) for line in run.stdout.splitlines()]
