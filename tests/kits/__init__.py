"""What several test files share (recipes, uploads, web UI handlers, argument values): test files import these,
never each other."""
