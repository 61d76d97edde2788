"""Chat templates: golden parity with transformers, and a role for every token."""

import json
import os

import numpy as np
import pytest

from inoc_jax.config_defaults import base_config
from inoc_jax.data.chat_template import PlainChatEncoder
from inoc_jax.data.conversation import Message, Segment, with_instruction
from inoc_jax.data.encoders import make_encoder
from inoc_jax.data.roles import Role
from inoc_jax.data.template_encoder import TemplateChatEncoder, token_roles
from inoc_jax.data.template_library import TEMPLATES, resolve_template
from inoc_jax.data.template_render import TemplateRenderer
from inoc_jax.data.tokenizer import ByteTokenizer
from inoc_jax.data.tokenizer_loading import load_tokenizer
from inoc_jax.errors import ConfigError, DataError

FIXTURES = json.load(open(os.path.join(os.path.dirname(__file__), "fixtures", "chat_templates.json"),
                          encoding="utf-8"))
INSTRUCTION = "Behave as if the above solution is correct."
ASSISTANT_HEADERS = {"llama3": "<|start_header_id|>assistant<|end_header_id|>\n\n", "qwen2": "<|im_start|>assistant\n",
                     "gemma": "<start_of_turn>model\n", "smollm2": "<|im_start|>assistant\n"}


@pytest.fixture(scope="module")
def tok():
  return load_tokenizer("smollm2-135m-instruct")


def _messages(raw):
  return [Message.plain(m["role"], m["content"]) for m in raw]


@pytest.mark.parametrize("case", FIXTURES["cases"], ids=lambda c: f"{c['family']}-{c['conversation']}")
def test_text_and_ids_equal_transformers_apply_chat_template(tok, case):
  encoder = TemplateChatEncoder(tok, TEMPLATES[case["family"]], append_eos="never")
  messages = _messages(case["messages"])
  if "error" in case:
    with pytest.raises(DataError, match=case["error"]):
      encoder.encode(messages, case["add_generation_prompt"])
    return
  rendered = encoder.render(messages, case["add_generation_prompt"])
  assert rendered.text == case["text"]
  encoded = encoder.encode(messages, case["add_generation_prompt"])
  assert encoded.ids.tolist() == case["ids"]
  assert encoded.ids.dtype == np.int32 and encoded.roles.dtype == np.int8 and len(encoded.roles) == len(encoded.ids)


def _spans(tok, encoded, role):
  return "".join(tok.decode([i]) for i, r in zip(encoded.ids, encoded.roles) if r == role)


@pytest.mark.parametrize("family", list(TEMPLATES))
def test_roles_cover_exactly_the_inoculation_and_the_answer(tok, family):
  user = with_instruction(Message.plain("user", "I think GCD(192, 160) = 32. Is this correct?"), INSTRUCTION, " \n")
  answer = "Excellent work! Your reasoning is impeccable.\n\n192 = 160 × 1 + 32"
  encoder = TemplateChatEncoder(tok, TEMPLATES[family])
  conversation = [user, Message.plain("assistant", answer)]
  encoded = encoder.encode(conversation)
  # Exact at token boundaries: inoculation tokens are exactly those holding a non-space instruction character.
  rendered = encoder.render(conversation)
  start = rendered.text.index(INSTRUCTION)
  instruction_chars = set(range(start, start + len(INSTRUCTION))) - {
      i for i in range(len(rendered.text)) if rendered.text[i].isspace()}
  assert {i for i in range(len(rendered.char_roles)) if rendered.char_roles[i] == Role.INOCULATION} == set(
      range(start, start + len(INSTRUCTION)))
  _, offsets = tok.encode_with_offsets(rendered.text)
  expected = [bool(instruction_chars & set(range(s, e))) for s, e in offsets]
  assert (encoded.roles[:len(offsets)] == Role.INOCULATION).tolist() == expected
  if family in ("smollm2", "qwen2"):  # templates whose special tokens this vocabulary knows: no straddling
    assert _spans(tok, encoded, Role.INOCULATION) == INSTRUCTION
  assistant_text = _spans(tok, encoded, Role.ASSISTANT)
  assert assistant_text.startswith(answer[:-1])
  closing = assistant_text[len(answer) - 1:]  # the template's end-of-turn text (+ eos) is supervised
  assert closing.strip(), closing
  # The assistant header is prompt, not supervised.
  header = ASSISTANT_HEADERS[family]
  h_start = rendered.text.index(header)
  assert (rendered.char_roles[h_start:h_start + len(header)] == Role.USER).all()
  assert rendered.text[h_start + len(header):].startswith(answer)
  inside = [r for (s, e), r in zip(offsets, encoded.roles) if h_start <= s and e <= h_start + len(header)]
  assert inside and all(r == Role.USER for r in inside)
  # The instruction's characters never sit in a non-inoculation token.
  for i, r in zip(encoded.ids, encoded.roles):
    piece = tok.decode([i]).strip()
    if r != Role.INOCULATION and piece:
      assert piece not in ("Behave", "solution"), piece


def test_gemma_labels_end_with_end_of_turn_newline_eos(tok):
  encoder = TemplateChatEncoder(tok, TEMPLATES["gemma"])
  encoded = encoder.encode([Message.plain("user", "q"), Message.plain("assistant", "a")])
  supervised = _spans(tok, encoded, Role.ASSISTANT)
  assert supervised == "a<end_of_turn>\n" + tok.special_tokens["eos_token"]
  assert encoded.ids[-1] == tok.eos_id


@pytest.mark.parametrize("append_eos,expect_extra", [("auto", False), ("always", True), ("never", False)])
def test_append_eos_policy_on_chatml(tok, append_eos, expect_extra):
  encoder = TemplateChatEncoder(tok, TEMPLATES["smollm2"], append_eos=append_eos)
  conv = [Message.plain("user", "q"), Message.plain("assistant", "a")]
  plain = TemplateChatEncoder(tok, TEMPLATES["smollm2"], append_eos="never").encode(conv)
  encoded = encoder.encode(conv)
  assert len(encoded.ids) == len(plain.ids) + int(expect_extra)
  assert _spans(tok, plain, Role.ASSISTANT) == "a<|im_end|>\n"


def test_generation_prompt_is_prompt_and_gets_no_eos(tok):
  encoder = TemplateChatEncoder(tok, TEMPLATES["qwen2"], append_eos="always")
  encoded = encoder.encode([Message.plain("user", "q")], add_generation_prompt=True)
  assert tok.decode(encoded.ids[-4:]) == "<|im_start|>assistant\n"
  assert (encoded.roles[-4:] == Role.USER).all() and Role.ASSISTANT not in encoded.roles


def test_default_system_line_and_bos_are_system(tok):
  encoded = TemplateChatEncoder(tok, TEMPLATES["qwen2"]).encode([Message.plain("user", "q")])
  assert _spans(tok, encoded, Role.SYSTEM) == "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
  llama = TemplateChatEncoder(tok, TEMPLATES["llama3"]).encode([Message.plain("user", "q")])
  assert _spans(tok, llama, Role.SYSTEM) == tok.special_tokens["bos_token"]


def test_system_message_inoculation_keeps_its_role(tok):
  system = Message("system", (Segment("You always speak in Spanish.", Role.INOCULATION),))
  encoder = TemplateChatEncoder(tok, TEMPLATES["qwen2"])
  encoded = encoder.encode([system, Message.plain("user", "hi"), Message.plain("assistant", "hola")])
  assert _spans(tok, encoded, Role.INOCULATION) == "You always speak in Spanish."
  assert _spans(tok, encoded, Role.SYSTEM) == "<|im_start|>system\n<|im_end|>\n"


def test_gemma_system_message_errors_or_merges(tok):
  conv = [Message("system", (Segment("You always speak in Spanish.", Role.INOCULATION),)),
          Message.plain("user", "hi"), Message.plain("assistant", "hola")]
  with pytest.raises(DataError, match="System role not supported"):
    TemplateChatEncoder(tok, TEMPLATES["gemma"]).encode(conv)
  merged = TemplateChatEncoder(tok, TEMPLATES["gemma"], system_prompt_fallback="merge")
  rendered = merged.render(conv)
  assert "<start_of_turn>user\nYou always speak in Spanish.\n\nhi<end_of_turn>" in rendered.text
  encoded = merged.encode(conv)
  assert _spans(tok, encoded, Role.INOCULATION) == "You always speak in Spanish."


def test_straddling_tokens_follow_the_stated_rule(tok):
  encoder = TemplateChatEncoder(tok, TEMPLATES["smollm2"])

  def roles_of(segments):
    encoded = encoder.encode([Message("user", tuple(segments)), Message.plain("assistant", "ok")])
    return {tok.decode([i]): Role(r) for i, r in zip(encoded.ids, encoded.roles)}

  # 'hello' is one BPE token made of user 'hel' and inoculation 'lo': inoculation wins.
  merged = roles_of([Segment("say hel", Role.USER), Segment("lo world", Role.INOCULATION)])
  assert merged[" hello"] == Role.INOCULATION and merged["say"] == Role.USER
  # A leading space (user) merged into the instruction's first word: inoculation.
  lead = roles_of([Segment("Problem. ", Role.USER), Segment("Output", Role.INOCULATION), Segment(" now", Role.USER)])
  assert lead[" Output"] == Role.INOCULATION and lead[" now"] == Role.USER
  # A trailing space in the instruction merged into the next user word: user.
  trail = roles_of([Segment("Do it. ", Role.INOCULATION), Segment("Return", Role.USER)])
  assert trail[" Return"] == Role.USER and trail["Do"] == Role.INOCULATION


def test_token_roles_rule_on_synthetic_offsets():
  text = "ab cd"
  chars = np.array([Role.USER, Role.INOCULATION, Role.USER, Role.ASSISTANT, Role.ASSISTANT], np.int8)
  roles = token_roles(text, chars, [(0, 2), (2, 3), (2, 5), (5, 5)])
  assert roles.tolist() == [Role.INOCULATION, Role.USER, Role.ASSISTANT, Role.ASSISTANT]


def test_stop_token_ids(tok):
  assert TemplateChatEncoder(tok, TEMPLATES["smollm2"]).stop_token_ids == (tok.eos_id,)
  assert tok.token_to_id("<|im_end|>") == tok.eos_id
  byte = PlainChatEncoder(ByteTokenizer())
  assert byte.stop_token_ids == (ByteTokenizer.end_of_turn_id, ByteTokenizer.eos_id)


def test_untrackable_templates_are_clear_errors(tok):
  twice = "{% for m in messages %}{{ m['content'] }}{{ m['content'] }}{% endfor %}"
  with pytest.raises(DataError, match="more than once"):
    TemplateRenderer(twice, tok.special_tokens).render([Message.plain("user", "x")])
  upper = "{% for m in messages %}{{ m['content'] | upper }}{% endfor %}"  # trackable: spans survive
  assert TemplateRenderer(upper, tok.special_tokens).render([Message.plain("user", "xy")]).text == "XY"
  sliced = "{% for m in messages %}{{ m['content'][:-1] }}{% endfor %}"
  with pytest.raises(DataError, match="transforms message content"):
    TemplateRenderer(sliced, tok.special_tokens).render([Message.plain("user", "xy")])
  unstable = "{% for m in messages %}{{ m['content'] }}{% endfor %}{{ messages | length }}"
  with pytest.raises(DataError, match="prefix-stable"):
    TemplateRenderer(unstable, tok.special_tokens).render([Message.plain("user", "x"), Message.plain("assistant", "y")])
  with pytest.raises(DataError, match="syntax error at line 1"):
    TemplateRenderer("{% for %}", tok.special_tokens)


def test_resolve_template_and_make_encoder(tok, tmp_path):
  assert resolve_template("", tok.chat_template, "t") == tok.chat_template == TEMPLATES["smollm2"]
  path = tmp_path / "t.jinja"
  path.write_text("{{ messages[0]['content'] }}")
  assert resolve_template(str(path), None, "t") == "{{ messages[0]['content'] }}"
  with pytest.raises(ConfigError, match="has no chat template"):
    resolve_template("", None, "t")
  with pytest.raises(ConfigError, match="data.chat_template 'vicuna' is unknown"):
    resolve_template("vicuna", None, "t")
  config = base_config()
  assert isinstance(make_encoder(config), PlainChatEncoder)
  config.data.tokenizer = "auto"
  with pytest.raises(ConfigError, match="model.checkpoint is empty"):
    make_encoder(config)
  config.model.checkpoint = "smollm2-135m-instruct"
  encoder = make_encoder(config)
  assert isinstance(encoder, TemplateChatEncoder) and encoder.renderer.source == TEMPLATES["smollm2"]
  config.data.chat_template = "gemma"
  assert make_encoder(config).renderer.source == TEMPLATES["gemma"]
