"""Chat templates that behave like Mistral-7B-Instruct v0.1, v0.2 and v0.3's.

Written from the templates' documented behaviour (their ``tokenizer_config.json``
``chat_template``, as transformers renders it), not downloaded. Each reproduces what matters to
training: which roles raise, where the system message lands, what is stripped, and that none of
them appends a generation prompt (the prompt ends with ``[/INST]``).

- v0.1: ``<s>[INST] user [/INST]answer</s>``; a system or tool message raises, and user /
  assistant must alternate.
- v0.2: an optional first system message is prepended to the FIRST user turn
  (``[INST] system\\n\\nuser [/INST]``), every turn opens with a space, the answer is
  `` answer</s>``; other roles raise.
- v0.3: the system message is prepended to the LAST user turn only; ``[INST] user[/INST]``
  (no space before ``[/INST]``); the answer is `` `` + trimmed text + ``</s>``; tool turns need a
  9-character ``tool_call_id`` and are skipped by the alternation check.
"""

from __future__ import annotations

MISTRAL_V01 = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}"
)

MISTRAL_V02 = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] %}{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- bos_token }}"
    "{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('After the optional system message, conversation roles must "
    "alternate user/assistant/user/assistant/...') }}"
    "{%- endif %}"
    "{%- if message['role'] == 'user' %}"
    "{%- if loop.first and system_message is defined %}"
    "{{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}"
    "{%- else %}{{- ' [INST] ' + message['content'] + ' [/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + eos_token }}"
    "{%- else %}{{- raise_exception('Only user and assistant roles are supported, with the "
    "exception of an initial optional system message!') }}"
    "{%- endif %}{%- endfor %}"
)

MISTRAL_V03 = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] %}{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{%- set ns = namespace(index=0) %}"
    "{%- for message in loop_messages %}"
    "{%- if not (message['role'] == 'tool' or message['role'] == 'tool_results' "
    "or (message.tool_calls is defined and message.tool_calls is not none)) %}"
    "{%- if (message['role'] == 'user') != (ns.index % 2 == 0) %}"
    "{{- raise_exception('After the optional system message, conversation roles must "
    "alternate user/assistant/user/assistant/...') }}"
    "{%- endif %}{%- set ns.index = ns.index + 1 %}"
    "{%- endif %}{%- endfor %}"
    "{{- bos_token }}"
    "{%- for message in loop_messages %}"
    "{%- if message['role'] == 'user' %}"
    "{%- if loop.last and system_message is defined %}"
    "{{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}"
    "{{- ' ' + message['content'] | trim + eos_token }}"
    "{%- elif message['role'] == 'tool' or message['role'] == 'tool_results' %}"
    "{%- if message.tool_call_id is not defined or message.tool_call_id | length != 9 %}"
    "{{- raise_exception('Tool call IDs should be alphanumeric strings with length 9!') }}"
    "{%- endif %}"
    "{{- '[TOOL_RESULTS] {\"content\": ' + message['content'] | string + ', \"call_id\": \"' "
    "+ message.tool_call_id + '\"}[/TOOL_RESULTS]' }}"
    "{%- else %}{{- raise_exception('Only user and assistant roles are supported, with the "
    "exception of an initial optional system message!') }}"
    "{%- endif %}{%- endfor %}"
)

MISTRAL_TEMPLATES = {"v0.1": MISTRAL_V01, "v0.2": MISTRAL_V02, "v0.3": MISTRAL_V03}
