"""cfdkit_widgets: ipywidgets explorers over the public cfdkit API."""
