"""Reports: terminal (rich), Markdown, and the files CI reads."""
