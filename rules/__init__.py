"""The rules gate ships with: data, not code. This file only makes rules/ installable as gate.rules."""
