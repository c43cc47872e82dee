"""Signed webhooks: a job's events POSTed to the URL its request names (Standard Webhooks)."""
