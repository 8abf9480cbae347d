"""The runc backend: containers run by runc under conmon, sandboxes as netns + CNI."""
