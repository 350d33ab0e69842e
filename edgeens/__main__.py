from edgeens.cli import app

app(prog_name="edgeens")
