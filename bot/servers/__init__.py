"""The processes bot/ runs as: the action server, the staff server and the command line."""
