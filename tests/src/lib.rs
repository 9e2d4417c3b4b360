//! Helpers shared by podflow's end-to-end tests (peer programs, temporary directories, UDP plumbing).
