"""The Tornado operations server: make_app(settings), one handler module per resource."""
