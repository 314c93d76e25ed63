"""Inference: the engine interface, its backends, chat, the HTTP server and the web demo."""
