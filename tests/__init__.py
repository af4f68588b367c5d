"""The test suite: folders mirror the packages (export/, runtime/, plugins/); builders in builders/."""
