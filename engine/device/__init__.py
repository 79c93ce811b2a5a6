"""The sound card side: the lock-free ring buffer, the native device callback, the output stream, thread priority."""
