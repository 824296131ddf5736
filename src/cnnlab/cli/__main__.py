from cnnlab.cli import entry

entry()
