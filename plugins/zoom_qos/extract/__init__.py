"""From Zoom to staging: which days a run reads, the staged format, privacy, what a session's answer means."""
