"""The evaluation set: Python questions and the source a good answer cites."""

from __future__ import annotations

# (question, source a good answer cites). Written from the Python documentation, not tuned
# per question: a few misses are expected, the bar is 80%.
EVALUATION_SET = [
    ("How does asyncio cancel a task?", "python:asyncio.tasks.Task.cancel"),
    ("How do I sort a list with a key function?", "python:builtins.list.sort"),
    ("What does the with statement do?", "pydoc:topic:with"),
    ("How does functools.lru_cache work?", "python:functools.lru_cache"),
    ("How do I read rows from a CSV file?", "python:csv"),
    ("What does the yield statement do in a generator?", "pydoc:topic:yield"),
    ("How do I create a dataclass?", "python:dataclasses.dataclass"),
    ("How do I parse JSON text into Python objects?", "python:json.loads"),
    (
        "How do I run a shell command with subprocess and capture its output?",
        "python:subprocess.run",
    ),
    ("How do I join path components with pathlib?", "python:pathlib.PurePath.joinpath"),
    ("How does the global statement work?", "pydoc:topic:global"),
    ("How do I count items with collections.Counter?", "python:collections.Counter"),
    ("How do I make a deep copy of an object?", "python:copy.deepcopy"),
    ("How do I generate a random integer in a range?", "python:random.Random.randint"),
    ("How does a lambda expression work?", "pydoc:topic:lambda"),
    ("How do I compile a regular expression pattern?", "python:re.compile"),
    ("How do I format a datetime as a string?", "python:datetime.datetime.strftime"),
    ("How do I wait for several asyncio tasks with gather?", "python:asyncio.tasks.gather"),
    ("How do I create a temporary directory?", "python:tempfile.TemporaryDirectory"),
    ("How do I use a try statement with finally?", "pydoc:topic:try"),
]
