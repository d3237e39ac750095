"""Cluster and client credentials: CURVE keys for peer traffic, bearer tokens for clients.

See ``keys`` (files and generation), ``zap`` (the ZeroMQ authentication handler),
``handshake`` (logging refused CURVE handshakes) and ``settings`` (what a node loads at start).
"""
