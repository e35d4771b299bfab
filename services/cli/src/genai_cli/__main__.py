"""`python -m genai_cli` is the `genai` command."""

from genai_cli.main import main

main()
