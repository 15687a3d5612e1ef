//! Exit statuses shared by every command, as Docker and Podman use them.

/// hutch itself failed (bad input, store error, missing prerequisite).
pub const EXIT_FAILED: i32 = 125;
/// The container command exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// The container command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;
