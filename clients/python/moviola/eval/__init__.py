"""Evaluation harnesses (``moviola eval``): numbers a team uses to choose what to serve.

Needs the client's ``eval`` extra (``pip install 'moviola-client[eval]'``: numpy, PyAV, matplotlib).
"""
