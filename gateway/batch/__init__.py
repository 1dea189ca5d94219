"""Batch files: readers (CSV, Parquet, COBOL fixed-width), the vectorised decision
function, and the resumable runner behind ``loangate batch score``."""
