"""The prompts an evaluation shows the model and how long it may answer: `eval.protocol`.

Five protocols, chosen by `eval.protocol` (default: `embedded`; `mllmu_bench` for data=mllmu_bench; `clear`
set by experiment=clear_baselines; `mmunlearner` and `mmunlearner_clear` by MMUnlearner's presets):

`embedded` -- the project's own protocol, as the embedded benchmark was built and taught with. The model's
processor wraps each question in its own turn (the embedded model: "question : {q} answer :"; a real
checkpoint: its `model.template`, a chat template); MC (generate mode) asks `proc.letter_question`, generation
and cloze ask the bare question (the cloze blank as the data writes it: `[blank]` in the embedded benchmark,
`__` in MLLMU-Bench's; no instruction), no few-shot, every item is
scored, and replies stop at `eval.max_new_tokens` (default 12) or the template's stop token.

`mllmu_bench` -- MLLMU-Bench's own evaluation, string for string. Source: the official eval.py
(franciscoliu/MLLMU-Bench, read through its copy YokeYao/MLLMU-Bench eval.py at 5762ad6), functions
`evaluate_classification`, `evaluate_generation` and `evaluate_fill_in_the_blank`; the strings are the
constants of unlearn/data/mllmu_prompts.py. What it does, and so what this module does:
  * The model input is the rendered string itself, tokenized whole with a leading bos (their
    `processor(images=..., text=prompt)` / `tokenizer(prompt)`), each `<image>` expanded into that image's
    tokens; no chat template. They use the same raw "USER: ... ASSISTANT:" strings for LLaVA-1.5 and
    Idefics2; Qwen2-VL is not in their code and gets the same strings here.
  * MC: "USER: <image>\\n{question}\\nA: ..\\nD: ..\\nJust give ONE letter representing the answer
    directly.\\nASSISTANT:" ("USER:\\n" for text-only), after the few-shot block. Generation: an instruction
    line, no few-shot. Cloze: `__` shown as [Blank] plus "Please **ONLY** provide the correct answer ...",
    after the few-shot block.
  * Few-shot (MC on forget / retain / test; cloze on those and on the real celebrities, their
    `retain_celebrity` mode): `random.sample(id_list, k)` people of the evaluated set, k = 1 for MC and, for
    cloze, 2 on LLaVA and 1 on Idefics2 (SHOT_PEOPLE; the tiny model is a LLaVA; Qwen2-VL, absent from their
    code, takes LLaVA's). MANU's copy of eval.py (franciscoliu/MANU) differs: 1 cloze person on LLaVA and,
    on Idefics2, only each shot person's first question per type -- not reproduced: that file as published
    (db6084e) does not parse (an unclosed `few_shot_image_prompts.append({` in its LLaVA cloze shots), so
    it cannot be what produced MANU's numbers. Every MC (cloze)
    question of a shot person in the item's modality becomes a shot, each image shot with the person's
    portrait, people in the row order of their `--few_shot_data`, Full_Set (`few_shot_df[few_shot_df['ID']
    .isin(selected_ids)]`, eval.py 275-276, 513-514: eval.shot_order=full_set, the default; `lookup`: the
    order of the rows they are looked up in, the only order until the forty-third session). Their draw is
    unseeded; here it is seeded (`eval.few_shot_seed`, default the run's seed) per (split, task), as they draw
    once per call. The
    celebrities' MC is zero-shot (not in their MC list), but its draw is looked up all the same, and a
    fictitious profile sharing the drawn ID has its MC question indices skipped in the celebrity's items
    (until 2026-12-03 all of them were scored).
  * The shots' questions are not scored (their `few_shot_question_indices`): an item is dropped when a shot
    has the same ID, modality and position in its row's list (MC: the modality's list; cloze: the one
    Mask_Task list of both forms) -- every MC (cloze) item of the shot people.
  * Shots are the drawn IDs' rows of their `--few_shot_data` file, which their README and MMUnlearner's
    MLLMU_eval.sh name as `Full_Set`: every fictitious profile's original questions and portrait (here: the
    forget and retain splits' rows, which together are Full_Set's people; SHOT_SOURCE). For forget and
    retain those are the evaluated people's own rows; for test, the forget people's original questions,
    while the test paraphrases of the same indices are not scored; for the celebrities' cloze, the
    celebrity IDs drawn are looked up, as their file writes them (`EvalItem.source_id`: the loader
    renumbers celebrities), among the fictitious profiles: a profile with the same ID gives its cloze
    questions as shots (and the celebrity items at those positions of the Mask_Task list are not scored),
    and without one the prompt is zero-shot and every item is scored. Whether real celebrity IDs ever equal a
    fictitious profile's is not known here (no data); until 2026-12-02 the celebrities' own questions were
    the shots, and until 2026-12-03 the lookup compared the renumbered IDs, so it never found a profile.
  * Generation limits: 50 new tokens everywhere, except Idefics2's text-only MC: 5; replies end where the
    checkpoint's generation config says (their `model.generate` sets no eos), not at a template's stop token.
  * Replies: they decode prompt plus reply and keep what follows the first "ASSISTANT:" (the shots hold
    none), which `eval.scorer=mllmu_bench` reads from the reply alone (unlearn/eval/scorers.py).
`eval.few_shot=false` keeps their strings and limits without shots (zero-shot, every item scored);
`eval.shot_people={mc: N, cloze: N}` draws that many people per task instead of SHOT_PEOPLE.

`mmunlearner` -- MMUnlearner's copy of that file, MLLMU_eval.py (Z1zs/MMUnlearner at fa77c66), which made its
MLLMU-Bench numbers. On LLaVA its prompts, limits, skips and look-ups are MLLMU-Bench's (above), but it draws
`few_shots_num` people for MC and cloze alike (MMUNLEARNER_SHOT_PEOPLE: 1, or 0 with `--shot_num zero_shot`:
eval.few_shot=false) and reads replies its own way (`eval.scorer=mmunlearner`). Its Qwen2-VL branches (its paper's
second model) write what MLLMU-Bench has no string for (QWEN2_VL_PROMPT, the processor's chat template over one
user turn, add_generation_prompt=True):
  * image+text MC: the chat template over (image, "{shots}\n{question}\n{A: ..\nD: ..}\nJust give ONE letter
    representing the answer directly."); text-only MC: MLLMU-Bench's raw LLaVA string, tokenized as it is (no bos);
  * generation: the chat template over (image, "{question}\nAnswer the question ... accurately in ENGLISH."); text-
    only: MLLMU-Bench's raw string;
  * cloze: the chat template over (image, "{shots}\n{[Blank] question}"); text-only: the chat template over (image
    placeholder, "{[Blank] question}") with no image given (`processor(images=None, ...)`), so the prompt keeps
    one unexpanded "<|vision_start|><|image_pad|><|vision_end|>" and no shots;
  * 50 new tokens everywhere, ending where the checkpoint's generation config says.
  With shots, their image MC and image cloze prompts hand the processor every shot's portrait and the item's,
  for the one image placeholder the chat template writes: the processor expands it by the first image's grid
  while the pixels hold every image, which, by transformers version, fails or shows the model the first shot's
  portrait for the item's (not run here). Their text tasks would run (text MC with its raw-string shots; text
  cloze shows none but still skips the shot people's questions); so that no mode runs half as theirs, this
  protocol refuses shots on Qwen2-VL (eval.few_shot=false: their --shot_num zero_shot). Their Idefics2 has no
  branch (refused); their Llama-3.2-Vision branch is not reproduced.

`clear` -- CLEAR's own evaluation (somvy/multimodal_unlearning mm/eval.py `get_all_evals`,
`eval_perturbation_ratio`; config/mm/eval.yaml), Qwen2-VL only, as CLEAR's collate (unlearn/data/written.py,
`clear`) is:
  * Generation: the item is written as CLEAR's collate writes it (chat template, image, answer), decoded with
    special tokens skipped, cut before the last occurrence of the decoded answer (`s[:s.rfind(ans)]`: "system\n
    You are a helpful assistant.\nuser\n{question}\nassistant\n" on a real Qwen2-VL), and that text is
    tokenized alone, so the model generates without the image and without its chat markers. 300 new tokens
    (eval.yaml `generation.max_new_tokens`), ending where the checkpoint's generation config says (their
    `model.generate` names no eos). Scored with `eval.scorer=clear` (calculate_metrics.py: stemmed ROUGE-L
    recall of the reply as decoded).
  * Likelihoods (task prob: answer probability, truth ratio, forget quality): the image, question and answer
    as CLEAR's collate labels them, so that on image items the question and most image tokens enter the
    per-token means of the truth, its paraphrase and the perturbed answers alike (their gt, paraphrased and
    perturbed losses are the collate's labels' summed loss over their count); whole rows (no shared prompt).
  * MC: CLEAR's evaluation has none; MC items keep the embedded protocol (eval.mc_mode as set).
  Not reproduced: the caption prompts, which CLEAR redraws on every access, so that the truth, paraphrase and
  perturbed rows of one image are asked with different prompts (here the item's one prompt); truncation at
  4096 tokens. Real faces and real world: one task here, `untouched`, whose metrics the run also reports for each
  set alone (unlearn/eval/metrics.py `source_metrics`, on data=clear under any protocol).
  calculate_metrics.py's tables keep its tasks apart: under this protocol the run adds each task's metrics
  (unlearn/eval/metrics.py `clear_task_metrics`); its pooled truth ratio is `eval.truth_ratio_perturbed=pooled`,
  which experiment=clear_baselines sets.

`mmunlearner_clear` -- MMUnlearner's CLEAR_eval.py (Z1zs/MMUnlearner at fa77c66; CLEAR_eval.sh runs it once per
set), which made its CLEAR numbers, on data=clear with Qwen2-VL (its CLEAR runs' model):
  * What it scores (`scored`, CLEAR_EVAL_ITEMS): the face-recognition MC of the forget and retain images and the
    MC of real_faces and real_world (`eval_classification`, `eval_classification_real`; reported apart, as
    CLEAR_eval.sh runs them, by `source_metrics`), and generation of the
    captions (image) and the TOFU questions (text) of the +tofu configs (`eval_generation`); not the caption
    MC, the name or real_* generation, the truth ratio or the test split, which it has no task for.
  * Prompts: Qwen2-VL's chat template over one user turn (QWEN2_VL_PROMPT, add_generation_prompt=True): MC
    (image, "{question}\nA. {option}\n...D. {option}\n") (`formulate_prompt_with_options`: "A." where
    MLLMU-Bench writes "A:", and no instruction); caption generation (image, the caption prompt); TOFU questions
    (the question alone). 50 new tokens everywhere, ending where the checkpoint's generation config says.
  * Replies as `eval.scorer=mmunlearner` reads them: the MC letter is the first character left after removing
    every one but [a-zA-Z0-9], upper-cased; generation scores the whole reply (ROUGE-1, -2, -L F-measures,
    stemmed, and BLEU, their columns).
  Not reproduced:
  * the answer's place among the options (their random.randint after random.seed(42), in the order of the rows;
    here the item's seeded order) and their count (every perturbed name there; three here, a 4-option MC);
  * the caption prompts (random.choice in the same stream there; here the item's, IMAGE_CAPTION_QUESTIONS by the
    image's position, unlearn/data/clear.py);
  * their image ("VQA") loop reads the +tofu config in CAPTION_MODE, which keeps the rows with a question
    (CLEAR_process.py:64-69), so it also asks every TOFU question with an image placeholder and no image and
    averages those replies into its image ROUGE and BLEU (forget01+tofu: 35 image rows, 40 TOFU rows); here the
    image column is the captions alone;
  * their text-only ("QA") loop scores each TOFU question against the last reply of the image loop, a TOFU question
    asked with a placeholder (`assistant_response`, set at CLEAR_eval.py:125, recorded at :162, scored at
    :166-167), so their text ROUGE is one reply against every answer; here each TOFU question is scored on its own
    reply;
  * which images: their retain generation captions every image of retain{R}+tofu (about 3,400), here the images
    that have a retain_perturbed row (about 395; data.retain_images=all captions every one); their retain MC reads
    a `retain{R}_perturbed` folder that CLEAR does not publish (load_from_disk of a local copy; here the same
    retain_perturbed images); their forget MC the forget{P}_perturbed rows (forget10: 378), here every forget{P}
    image (379; one without a perturbed row gets seeded wrong names);
  * flash_attention_2 (model.attn_implementation: sdpa), the pixel values cast to float16 before the model casts
    them to bfloat16 (CLEAR_eval.py:70, 120, 151, 229), one item at a time (padded batches here).
  Refused under it (unlearn/settings.py), as it has no such task: the test split in eval.splits or, with the
  relearning attack on, eval.relearn.splits; tasks other than mc and gen; eval.mc_mode other than generate.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from unlearn.data import mllmu_prompts as official
from unlearn.data.collate import IGNORE, Example, prompt_example
from unlearn.eval.items import EvalItem
from unlearn.models.prompt_ids import IMAGE_PLACEHOLDER, encode_prompt  # noqa: F401 (tests import it here)

PROTOCOLS = ("embedded", "mllmu_bench", "mmunlearner", "clear", "mmunlearner_clear")
EMBEDDED_MAX_NEW_TOKENS = 12
CLEAR_MAX_NEW_TOKENS = 300  # config/mm/eval.yaml generation.max_new_tokens
MMUNLEARNER_CLEAR_MAX_NEW_TOKENS = 50  # CLEAR_eval.py:73, 122, 153, 231: model.generate(max_new_tokens=50)
# (task, attribute) of the items CLEAR_eval.py scores: face recognition MC (eval_classification, :44-99), real_faces
# and real_world MC (eval_classification_real, :213-248), captions and TOFU questions generated (eval_generation)
CLEAR_EVAL_ITEMS = {("mc", "name"), ("mc", "untouched"), ("gen", "caption"), ("gen", "tofu")}

# --- MLLMU-Bench's settings (official eval.py) ------------------------------------------------------------
OFFICIAL_MAX_NEW_TOKENS = 50  # every model.generate call in eval.py ...
OFFICIAL_TEXT_MC_MAX_NEW_TOKENS = {"idefics2": 5}  # ... but Idefics2's Pure_Text classification
# people drawn per task (`random.sample(id_list, k)`, model ids llava* / HuggingFaceM4*), as of its newest
# version (5762ad6, 2025-03-12, which cut LLaVA's MC draw from 2 to 1; cloze stays 2)
SHOT_PEOPLE = {"mc": {"llava": 1, "idefics2": 1}, "cloze": {"llava": 2, "idefics2": 1}}
DEFAULT_FAMILY = "llava"  # families their code lacks (Qwen2-VL) take LLaVA's settings
# MMUnlearner's MLLMU_eval.py: `few_shots_num` people for both tasks (its main(): 1, or 0 for "zero" shot_num)
MMUNLEARNER_SHOT_PEOPLE = {"mc": 1, "cloze": 1}
MMUNLEARNER_FAMILIES = ("llava", "qwen2_vl")  # its model-id branches ("llava", "qwen"; "llama" is Mllama's)
# the evaluation modes with a few-shot block, per task (their `mode in [...]` lists)
FEW_SHOT_SPLITS = {"mc": ("forget", "retain", "test"), "cloze": ("forget", "retain", "test", "untouched")}
# where a split's shots are looked up: their Full_Set, the fictitious profiles (forget and retain rows); a split
# whose own people are fictitious finds the drawn people there under their own rows
SHOT_SOURCE = {"test": ("forget",), "untouched": ("forget", "retain")}


def check_protocol(name: str) -> str:
    if name not in PROTOCOLS:
        raise ValueError(f"eval.protocol={name!r}: expected one of {list(PROTOCOLS)}")
    return name


def family_of(proc) -> str:
    return getattr(proc, "family", DEFAULT_FAMILY)


# --- The official strings -------------------------------------------------------------------------------
def options_block(options: tuple[str, ...], letters=official.LETTERS) -> dict[str, str]:
    """`letters` (A-D, or a file's own keys under data.on_bad_row=score) -> the options' texts."""
    return dict(zip(letters, options))


def shot_options(shot: EvalItem) -> dict[str, str]:
    """A shot's options A-D by name, as eval.py's few-shot block writes them (`few_shot_options['A']`, 352-355,
    406-409): a fifth key of the file's is not shown (a shot lacking one of A-D is refused: `check_shot_options`)."""
    block = options_block(shot.options, shot.letters)
    return {k: block[k] for k in official.LETTERS}


def check_shot_options(shots: dict[tuple[str, str, str], list[EvalItem]], scored: list[EvalItem]) -> None:
    """Refuse MC shots whose Options lack one of A-D (a file's own keys, kept by data.on_bad_row=score), shown
    before a question that is asked (`scored`): eval.py's few-shot block reads `few_shot_options['A']` to `['D']`
    by name (352-355, 406-409) as it builds each asked question's prompt, so it stops there on a KeyError, uncaught
    (no split after it is scored either). A shot block before no asked question is never built: not refused.
    Checked before the run (unlearn/pipeline.py `check_mc_options_before_run`) and where the prompts are made."""
    asked = {(it.split, it.task, it.modality) for it in scored}
    for key, found in shots.items():
        if key[1] != "mc" or key not in asked:
            continue
        for shot in found:
            if missing := [k for k in official.LETTERS if k not in shot.letters]:
                raise ValueError(
                    f"MC item {shot.uid} has Options {list(shot.letters)}, lacking {missing}, kept by "
                    f"data.on_bad_row=score as MLLMU-Bench's eval.py asks it with its own keys; it is a few-shot "
                    f"example of the {key[0]} {key[2]} MC questions here, where eval.py stops (its shot block reads "
                    f"few_shot_options['A'] to ['D']): set eval.few_shot=false (no shots), another "
                    f"eval.few_shot_seed, or drop such questions (data.on_bad_row=skip)")


def render_mc(question: str, options: tuple[str, ...], multimodal: bool, shots: list[EvalItem] = (),
              letters=official.LETTERS) -> str:
    shot = official.MC_FEW_SHOT_MULTIMODAL if multimodal else official.MC_FEW_SHOT_TEXT
    # a shot whose Correct_Answer is no option letter (data.on_bad_row=score) shows it as eval.py does
    head = "".join(shot.format(question=s.question, answer=s.letters[s.answer_index] if s.answer_index >= 0
                               else s.answer, **shot_options(s)) for s in shots)
    return head + official.format_mc_prompt(question, options_block(options, letters), multimodal)


def render_generation(question: str, multimodal: bool) -> str:
    return (official.GEN_PROMPT_MULTIMODAL if multimodal else official.GEN_PROMPT_TEXT).format(question=question)


def render_cloze(question: str, multimodal: bool, shots: list[EvalItem] = ()) -> str:
    shot = official.CLOZE_FEW_SHOT_MULTIMODAL if multimodal else official.CLOZE_FEW_SHOT_TEXT
    head = "".join(shot.format(question=official.format_cloze_question(s.question), answer=s.answer)
                   for s in shots)
    query = official.CLOZE_PROMPT_MULTIMODAL if multimodal else official.CLOZE_PROMPT_TEXT
    return head + query.format(question=official.format_cloze_question(question))


def render(item: EvalItem, shots: list[EvalItem] = ()) -> str:
    """The official prompt of one item, after its shots (same task and modality)."""
    multimodal = item.modality == "multimodal"
    if item.task == "mc":
        return render_mc(item.question, item.options, multimodal, shots, item.letters)
    if item.task == "gen":
        return render_generation(item.question, multimodal)
    if item.task == "cloze":
        return render_cloze(item.question, multimodal, shots)
    raise ValueError(f"unknown task {item.task!r}: expected mc, gen or cloze")


def render_mmunlearner_qwen2_vl(item: EvalItem) -> str:
    """MLLMU_eval.py's Qwen2-VL prompt of one item, zero-shot (`<image>`: the item's image, expanded when
    encoded); the text-only MC and generation prompts are MLLMU-Bench's raw strings (see the module docstring)."""
    from unlearn.data.writings import IMAGE_MARKUP, QWEN2_VL_PROMPT

    if item.modality == "text" and item.task != "cloze":
        return render(item)
    if item.task == "mc":
        options = official.format_options(options_block(item.options, item.letters))
        text = f"\n{item.question}\n{options}\n{official.MC_INSTRUCTION}"
    elif item.task == "gen":
        text = f"{item.question}\n{official.GEN_INSTRUCTION_MULTIMODAL}"
    elif item.task == "cloze":
        question = official.format_cloze_question(item.question)
        text = f"\n{question}" if item.modality == "multimodal" else question
    else:
        raise ValueError(f"unknown task {item.task!r}: expected mc, gen or cloze")
    # their text-only cloze keeps the image entry of the turn, with no image given: the markup stays as written
    image = IMAGE_PLACEHOLDER if item.modality == "multimodal" else IMAGE_MARKUP["qwen2_vl"]
    return QWEN2_VL_PROMPT.format(image=image, text=text)


def render_mmunlearner_clear(item: EvalItem) -> str:
    """CLEAR_eval.py's prompt of one item: the chat template over (image, text) or (text) with
    add_generation_prompt=True; MC text is `formulate_prompt_with_options` (:196-211)."""
    from unlearn.data.writings import QWEN2_VL_PROMPT

    text = item.question
    if item.task == "mc":
        options = "\n".join(f"{letter}. {o}" for letter, o in zip(official.LETTERS, item.options))
        text = f"{item.question}\n{options}\n"
    image = IMAGE_PLACEHOLDER if item.modality == "multimodal" else ""
    return QWEN2_VL_PROMPT.format(image=image, text=text)


def official_max_new_tokens(family: str, item: EvalItem) -> int:
    if item.task == "mc" and item.modality == "text":
        return OFFICIAL_TEXT_MC_MAX_NEW_TOKENS.get(family, OFFICIAL_MAX_NEW_TOKENS)
    return OFFICIAL_MAX_NEW_TOKENS


# --- Protocols ------------------------------------------------------------------------------------------
def rendered_example(proc, text: str, item: EvalItem) -> Example:
    """The prompt `text` as generation input: the item's image, if it has one, for its one placeholder."""
    images = [item.pixel_values] if item.modality == "multimodal" else []
    ids = encode_prompt(proc, text, images)
    return Example(ids, [IGNORE] * len(ids), images or None)


def checkpoint_stop(model, proc):
    """What the official scripts' `model.generate` stops at: the checkpoint's generation config (they name no
    eos and end no chat turn of their own), else the processor's stop token."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    return proc.stop_token_id if eos is None else eos


@dataclass
class EmbeddedPrompts:
    """The embedded protocol: the processor's own turn around the question (see the module docstring)."""

    max_new_tokens: int | None = None
    name = "embedded"

    def example(self, proc, item: EvalItem) -> Example:
        question = proc.letter_question(item.question, item.options) if item.task == "mc" else item.question
        return prompt_example(proc, question, item.pixel_values)

    def limit(self, item: EvalItem) -> int:
        return self.max_new_tokens or EMBEDDED_MAX_NEW_TOKENS

    def stop(self, model, proc):
        """The end of the model's own turn (its template's stop token)."""
        return proc.stop_token_id

    def scored(self, items: list[EvalItem]) -> list[EvalItem]:
        return items


@dataclass
class MllmuBenchPrompts:
    """MLLMU-Bench's protocol. `shots[(split, task, modality)]`: the shot items shown before that split's
    items of that task and modality; `max_new_tokens`: None for the official limits, else one for all."""

    family: str = DEFAULT_FAMILY
    shots: dict[tuple[str, str, str], list[EvalItem]] = field(default_factory=dict)
    max_new_tokens: int | None = None
    # the looked-up questions whose items are not scored, shown or not (`shot_lookup`); None: the shots
    unscored: dict[tuple[str, str, str], list[EvalItem]] | None = None
    name = "mllmu_bench"
    # its MC prompt shows a question's Options keys as the file writes them (data.on_bad_row=score keeps a file's
    # own), and the reply's letter is read against them (eval.py:125, 376, 432; unlearn/eval/scoring.py score_mc)
    file_keys = True

    def text(self, item: EvalItem) -> str:
        return render(item, self.shots.get((item.split, item.task, item.modality), []))

    def example(self, proc, item: EvalItem) -> Example:
        shots = self.shots.get((item.split, item.task, item.modality), [])
        images = [s.pixel_values for s in shots] + [item.pixel_values] if item.modality == "multimodal" else []
        ids = encode_prompt(proc, render(item, shots), images)
        return Example(ids, [IGNORE] * len(ids), images or None)

    def limit(self, item: EvalItem) -> int:
        return self.max_new_tokens or official_max_new_tokens(self.family, item)

    def stop(self, model, proc):
        return checkpoint_stop(model, proc)

    def scored(self, items: list[EvalItem]) -> list[EvalItem]:
        """Items other than the shots' own questions: same split, task, ID, modality and position in the row's
        list (eval.py 588-592 skips by the row's ID and the question's index in its task list)."""
        looked_up = self.shots if self.unscored is None else self.unscored
        used = {(key[0], key[1], s.profile, s.modality, s.index) for key, shots in looked_up.items() for s in shots}
        return [it for it in items if (it.split, it.task, it.profile, it.modality, it.index) not in used]

    def shot_people(self) -> dict[str, list[int]]:
        """`split/task` -> the people whose questions are shots (for the log and the report)."""
        out: dict[str, list[int]] = defaultdict(list)
        for (split, task, _), shots in sorted(self.shots.items()):
            for s in shots:
                if s.person not in out[f"{split}/{task}"]:
                    out[f"{split}/{task}"].append(s.person)
        return dict(out)


@dataclass
class MmunlearnerPrompts(MllmuBenchPrompts):
    """MMUnlearner's MLLMU_eval.py: MLLMU-Bench's protocol on LLaVA, its own prompts on Qwen2-VL (zero-shot)."""

    name = "mmunlearner"

    @property
    def imageless_placeholders(self) -> bool:
        """Its Qwen2-VL text-only cloze keeps an image placeholder with no image: generated apart from images."""
        return self.family == "qwen2_vl"

    def text(self, item: EvalItem) -> str:
        return render_mmunlearner_qwen2_vl(item) if self.family == "qwen2_vl" else super().text(item)

    def example(self, proc, item: EvalItem) -> Example:
        if self.family != "qwen2_vl":
            return super().example(proc, item)
        return rendered_example(proc, render_mmunlearner_qwen2_vl(item), item)


def clear_generation_ids(proc, item: EvalItem, family: str) -> list[int]:
    """The ids CLEAR's eval.py generates after: its collate's string for the item, decoded with special tokens
    skipped, cut before the decoded answer's last occurrence, tokenized alone (no image)."""
    from unlearn.data.writings import IMAGE_MARKUP, written_text

    tok = proc.tokenizer
    written = written_text(item.question, item.answer, item.modality, family, "clear", "eval.protocol")
    text = tok.decode(tok.encode(written.replace(IMAGE_PLACEHOLDER, IMAGE_MARKUP[family]), add_special_tokens=True),
                      skip_special_tokens=True)
    answer = tok.decode(tok.encode(item.answer, add_special_tokens=True), skip_special_tokens=True)
    return tok.encode(text[:text.rfind(answer)], add_special_tokens=True)


@dataclass
class ClearPrompts:
    """CLEAR's protocol (see the module docstring); MC items are the embedded protocol's (`mc_prompts`)."""

    family: str
    max_new_tokens: int | None = None
    name = "clear"
    prob_labels = "clear"  # the likelihood items are labelled as CLEAR's collate labels them

    @property
    def mc_prompts(self) -> EmbeddedPrompts:
        return EmbeddedPrompts(self.max_new_tokens)

    def example(self, proc, item: EvalItem) -> Example:
        ids = clear_generation_ids(proc, item, self.family)
        return Example(ids, [IGNORE] * len(ids), None)

    def limit(self, item: EvalItem) -> int:
        return self.max_new_tokens or CLEAR_MAX_NEW_TOKENS

    def stop(self, model, proc):
        return checkpoint_stop(model, proc)

    def scored(self, items: list[EvalItem]) -> list[EvalItem]:
        return items


@dataclass
class MmunlearnerClearPrompts:
    """MMUnlearner's CLEAR_eval.py (see the module docstring): its prompts, its limit, its tasks."""

    family: str
    max_new_tokens: int | None = None
    name = "mmunlearner_clear"

    def text(self, item: EvalItem) -> str:
        return render_mmunlearner_clear(item)

    def example(self, proc, item: EvalItem) -> Example:
        return rendered_example(proc, self.text(item), item)

    def limit(self, item: EvalItem) -> int:
        return self.max_new_tokens or MMUNLEARNER_CLEAR_MAX_NEW_TOKENS

    def stop(self, model, proc):
        return checkpoint_stop(model, proc)

    def scored(self, items: list[EvalItem]) -> list[EvalItem]:
        """The items of CLEAR_eval.py's tasks: no test split (CLEAR_eval.sh runs forget, retain, realface,
        realworld), no truth ratio, no caption MC, no name or real_* generation."""
        return [it for it in items if it.split != "test" and (it.task, it.attribute) in CLEAR_EVAL_ITEMS]


SHOT_ORDERS = ("full_set", "lookup")


def full_set_order(setting: str, full_set, data: str = "the data") -> tuple[str, ...] | None:
    """The order `shot_lookup` lays the drawn shot people out in (`eval.shot_order`): their eval.py's, Full_Set's
    row order (`full_set`: the data's Full_Set IDs as its file writes them, Benchmark.full_set), or None for the
    order of the rows they are looked up in (`lookup`: a split's own; test's in forget's; the celebrities' in
    forget's then retain's). Refused, naming the setting, where Full_Set's order is asked and the data has none."""
    if setting not in SHOT_ORDERS:
        raise ValueError(f"eval.shot_order={setting!r}: expected one of {list(SHOT_ORDERS)}")
    if setting == "lookup":
        return None
    if full_set is None:
        raise ValueError(f"eval.shot_order=full_set lays the few-shot people out in the row order of MLLMU-Bench's "
                         f"Full_Set, as its eval.py does; {data} has no Full_Set (a local MLLMU-Bench snapshot "
                         f"without its Full_Set folder, or data without one, e.g. data=clear): download the "
                         f"snapshot whole, or set eval.shot_order=lookup (the order of the rows the shots are "
                         f"looked up in)")
    return tuple(full_set)


def check_full_set(full_set, profiles, data: str = "the data") -> None:
    """Every fictitious profile a shot can be looked up as (`profiles`: the forget and retain rows' IDs as their
    files write them) has a Full_Set row to be ordered by: their eval.py finds a profile missing from Full_Set no
    shot at all, which this protocol does not reproduce, so it is refused, naming the IDs."""
    missing = sorted(set(profiles) - set(full_set))
    if missing:
        raise ValueError(f"eval.shot_order=full_set: {data}'s Full_Set has no row for the IDs {missing[:10]}"
                         f"{' ...' if len(missing) > 10 else ''} of its forget and retain rows (their eval.py would "
                         f"show no shot for them); use a complete snapshot, or set eval.shot_order=lookup")


def in_full_set_order(shots: list[EvalItem], order) -> list[EvalItem]:
    """`shots` reordered as their eval.py lays them out, `few_shot_df[few_shot_df['ID'].isin(selected_ids)]`:
    people in Full_Set's row order (`order`, IDs as the file writes them), each person's questions in their own
    order (a stable sort). A profile absent from `order` is refused (check_full_set says so before the run)."""
    rank = {profile: k for k, profile in reversed(list(enumerate(order)))}  # a repeated ID: its first row
    missing = sorted({s.profile for s in shots} - set(rank))
    if missing:
        check_full_set(order, missing)
    return sorted(shots, key=lambda s: rank[s.profile])


def draw_shot_people(people: list[int], k: int, seed: int, split: str, task: str) -> list[int]:
    """`random.sample(id_list, k)` as their eval.py draws, seeded per (seed, split, task)."""
    return random.Random(f"{seed}/{split}/{task}").sample(people, min(k, len(people)))


def few_shot(items_by_split: dict[str, list[EvalItem]], source, family: str, seed: int,
             shot_people: dict | None = None, order=None) -> dict:
    """The shots per (split, task, modality): the looked-up questions (`shot_lookup`) of the splits whose
    prompts show them (FEW_SHOT_SPLITS)."""
    return shown(shot_lookup(items_by_split, source, family, seed, shot_people, order))


def people_per_task(task: str, family: str, shot_people: dict | None = None) -> int:
    """How many people a task's shots are drawn from: `shot_people` (eval.shot_people; MMUnlearner's
    MLLMU_eval.py draws `few_shots_num` = 1 for MC and cloze alike), else MLLMU-Bench's per family."""
    if shot_people is not None and task in shot_people:
        return int(shot_people[task])
    return SHOT_PEOPLE[task].get(family, SHOT_PEOPLE[task][DEFAULT_FAMILY])


def shown(looked_up: dict) -> dict:
    """Of the looked-up questions, those of the splits whose prompts show them (FEW_SHOT_SPLITS)."""
    return {key: found for key, found in looked_up.items() if key[0] in FEW_SHOT_SPLITS[key[1]]}


def shot_lookup(items_by_split: dict[str, list[EvalItem]], source, family: str, seed: int,
                shot_people: dict | None = None, order=None) -> dict:
    """Per (split, task, modality), the questions their eval.py looks up for the drawn shot people, in every
    mode: shown as shots where the mode has a few-shot block, and never scored either way (the celebrities'
    MC shows none, yet skips the questions of a profile sharing a drawn ID: eval.py 263-303, 334, 389).
    `source(split)` gives a split's items; they are looked up among the split's own, or among the splits
    SHOT_SOURCE names (test: forget; the celebrities: the fictitious people). `order`: Full_Set's IDs, whose row
    order the people's blocks then follow, as in eval.py (`full_set_order`); None: the looked-up rows' order."""
    shots: dict[tuple[str, str, str], list[EvalItem]] = {}
    for split, items in items_by_split.items():
        people = list(dict.fromkeys(it.person for it in items))  # their id_list: the set's order
        for task in FEW_SHOT_SPLITS:
            if not any(it.task == task for it in items):
                continue
            k = people_per_task(task, family, shot_people)
            chosen = set(draw_shot_people(people, k, seed, split, task))
            # their lookup: the drawn IDs, as the file writes them, among the shot file's rows
            wanted = {it.profile for it in items if it.person in chosen}
            pool = [it for s in SHOT_SOURCE.get(split, (split,)) for it in source(s)]
            for modality in ("multimodal", "text"):
                found = [it for it in pool if it.task == task and it.modality == modality and it.profile in wanted]
                shots[(split, task, modality)] = found if order is None else in_full_set_order(found, order)
    return shots


def mllmu_reading(name: str, shot_people: dict | None) -> tuple[type, dict | None]:
    """MLLMU-Bench's eval.py reading (eval.protocol=mllmu_bench) or MMUnlearner's MLLMU_eval.py's (mmunlearner), and
    the shot people it draws per task: eval.shot_people over MMUnlearner's own counts for the latter."""
    if name == "mmunlearner":
        return MmunlearnerPrompts, {**MMUNLEARNER_SHOT_PEOPLE, **(shot_people or {})}
    return MllmuBenchPrompts, shot_people


def mc_prompts_before_run(name: str, items_by_split: dict[str, list[EvalItem]], source, seed: int = 0,
                          use_few_shot: bool = True, shot_people: dict | None = None, order=None):
    """The MC reading `make_prompts(name, ...)` makes, before the model (and with it the processor's family) is
    loaded: its `file_keys`, its `scored` and its MC shots, for the checks made before the run (unlearn/pipeline.py
    `check_mc_options_before_run`). The MC draw is the same for every family (one person: SHOT_PEOPLE["mc"],
    MMUNLEARNER_SHOT_PEOPLE), and each task's draw is seeded apart, so the cloze's is left out. None where a
    family's MC draw could differ (none does today)."""
    if check_protocol(name) in ("embedded", "clear"):  # clear's MC is the embedded protocol's (`mc_prompts`)
        return EmbeddedPrompts()
    if name == "mmunlearner_clear":
        return MmunlearnerClearPrompts(DEFAULT_FAMILY)  # its `scored` reads no family
    make, shot_people = mllmu_reading(name, shot_people)
    if not use_few_shot:
        return make()
    if len({people_per_task("mc", family, shot_people) for family in SHOT_PEOPLE["mc"]}) != 1:
        return None
    looked_up = shot_lookup(items_by_split, source, DEFAULT_FAMILY, seed, {**(shot_people or {}), "cloze": 0}, order)
    return make(DEFAULT_FAMILY, shown(looked_up), unscored=looked_up)


def make_prompts(name: str, proc, items_by_split: dict[str, list[EvalItem]] | None = None, source=None,
                 seed: int = 0, use_few_shot: bool = True, max_new_tokens: int | None = None,
                 shot_people: dict | None = None, order=None):
    """The protocol object the evaluation calls: `example(proc, item)`, `limit(item)`, `scored(items)`. `order`:
    Full_Set's IDs, in whose row order the shot people's blocks are laid out (`full_set_order`, eval.shot_order);
    None: the order of the rows they are looked up in."""
    if check_protocol(name) == "embedded":
        return EmbeddedPrompts(max_new_tokens)
    family = family_of(proc)
    if name == "clear":
        from unlearn.data.writings import STRINGS

        if ("clear", family, "multimodal") not in STRINGS:
            raise ValueError(f"eval.protocol=clear writes CLEAR's Qwen2-VL chat template (its default model); model "
                             f"family {family!r} has none: use eval.protocol=embedded")
        return ClearPrompts(family, max_new_tokens)
    if name == "mmunlearner_clear":
        if family != "qwen2_vl":
            from unlearn.data.writings import STRINGS

            # only a protocol this family has (until 2026-12-05 eval.protocol=clear was named for Idefics2 too,
            # which refuses it)
            others = "eval.protocol=clear or embedded" if ("clear", family, "multimodal") in STRINGS \
                else "eval.protocol=embedded"
            raise ValueError(f"eval.protocol=mmunlearner_clear writes CLEAR_eval.py's Qwen2-VL chat-template prompts "
                             f"(their CLEAR runs' model); model family {family!r} has none: use {others}")
        return MmunlearnerClearPrompts(family, max_new_tokens)
    make, shot_people = mllmu_reading(name, shot_people)
    if name == "mmunlearner":
        if family not in MMUNLEARNER_FAMILIES:
            raise ValueError(f"eval.protocol=mmunlearner: MMUnlearner's MLLMU_eval.py has prompts for "
                             f"{list(MMUNLEARNER_FAMILIES)}, not model family {family!r}: "
                             f"use eval.protocol=mllmu_bench")
        if family == "qwen2_vl" and use_few_shot and any(shot_people.values()):
            raise ValueError(f"eval.protocol=mmunlearner on Qwen2-VL with shots (eval.shot_people: {shot_people}): "
                             f"MMUnlearner's MLLMU_eval.py hands every shot's portrait beside the item's to one "
                             f"image placeholder, which fails or shows the wrong portrait; set eval.few_shot=false "
                             f"(their --shot_num zero_shot)")
    if not use_few_shot:
        return make(family, {}, max_new_tokens)
    looked_up = shot_lookup(items_by_split or {}, source, family, seed, shot_people, order)
    return make(family, shown(looked_up), max_new_tokens, unscored=looked_up)
