"""HTML and PNG rendering of plain results (dicts, DataFrames, arrays); imports neither featsel nor generation."""
