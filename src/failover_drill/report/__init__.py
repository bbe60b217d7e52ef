"""Run directories, the crash-safe journal, result.json, Markdown/HTML reports and run history."""
