"""One resource provider per resource type. The same provider object serves a direct ARM
request and a template deployment, so the two cannot drift."""
