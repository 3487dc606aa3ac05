"""One-click example prompts for people who never read code.

Each example shows how one task is phrased for each kind of model: a seq2seq
model like FLAN-T5 is told the task (often as a prefix); a chat model gets an
instruction; a base causal model would need the text set up so that the
answer is its natural continuation. A *pairing* example also picks the two
panels' models and precisions (the same model on both sides, in two precisions).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExampleSide:
    """What a pairing example puts in one panel.

    Args:
        kind: ``"seq2seq"`` or ``"causal"``: the panel gets that kind's default model (FLAN-T5 small,
            SmolLM2-135M), or the first model of that kind available here when the default is not.
        precision: the panel's precision (``"float32"``, ``"bfloat16"``, ``"8-bit"``…).
    """

    kind: str
    precision: str


@dataclass(frozen=True)
class Example:
    """A one-click example.

    Args:
        title: button label.
        prompt: what goes in the shared prompt box.
        task_prefix: prefix for the seq2seq side (FLAN-T5 style), "" for none.
        how: one sentence on how each kind of model reads this prompt.
        left / right: for a pairing example, what each panel gets (``None``: the panels keep their models).
        chat_template: whether causal models wrap the prompt in their chat template (both panels' switch).
        task: the task a vote on it counts under (one of ``evidence.types.TASKS``).
    """

    title: str
    prompt: str
    task_prefix: str
    how: str
    left: ExampleSide | None = None
    right: ExampleSide | None = None
    chat_template: bool = True
    task: str = "other"


EXAMPLES: tuple[Example, ...] = (
    Example("Summarize", "The Eiffel Tower was built for the 1889 World's Fair in Paris. At first many artists "
            "criticised its design, but it became the most visited paid monument in the world and a symbol of France.",
            "summarize: ", "Seq2seq gets the task as a 'summarize: ' prefix on the encoder input; the chat model gets "
            "the text as a user message and decides what to do with it (try adding 'Summarize this:' for it).",
            task="summarize"),
    Example("Translate", "Translate English to German: The weather is nice today.", "",
            "Both read the instruction; FLAN-T5 was trained on exactly this phrasing, the chat model follows it as a request.",
            task="translate"),
    Example("Answer a question", "What is the capital of France?", "",
            "Seq2seq writes a new, short answer; the causal model continues the chat after 'assistant'.",
            task="answer a question"),
    Example("Continue a story", "Once upon a time, in a village by the sea, there lived a girl who", "",
            "The causal model's native task: it continues the text. This example turns the chat template off: "
            "wrapped as a chat message, a chat model would answer it (often with a new story) instead of going on "
            "with your sentence. Seq2seq treats it as an input to respond to.", chat_template=False,
            task="continue a text"),
    Example("Follow an instruction", "List three fruits that are red.", "",
            "Instruction-tuned models of both kinds follow it; a base model (GPT-2) would only continue the sentence.",
            task="follow an instruction"),
    Example("FLAN-T5 float32 vs 8-bit", "Translate English to German: How old are you?", "",
            "The same seq2seq model twice: full precision on the left, its linear layers quantized to int8 on the "
            "right (about half the memory; on CPU usually slower). Do the answers still agree?",
            left=ExampleSide("seq2seq", "float32"), right=ExampleSide("seq2seq", "8-bit"), task="translate"),
    Example("SmolLM2 float32 vs bfloat16", "Explain in two sentences why the sky is blue.", "",
            "The same causal model twice: float32 on the left, bfloat16 on the right (half the bytes per weight; on a "
            "CPU with native bf16 usually faster). Greedy answers often agree for a while, then part ways.",
            left=ExampleSide("causal", "float32"), right=ExampleSide("causal", "bfloat16"),
            task="follow an instruction"),
)
