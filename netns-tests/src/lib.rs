//! Harness for the netns tests.
