"""Seeded synthetic support conversations with QA outcomes.

Each conversation is drawn from latent facts (product, intent, where the agent greeted,
where the summary sits, what was said about card numbers and passwords, how the issue
ended, how angry the customer was) and rendered turn by turn from paraphrase banks with
typos and fillers. The label is a rubric over those facts, so several outcomes turn on
*order* rather than on words: a greeting in the agent's first turn versus a later one, a
recap at the end versus one followed by more questions, "it works now" before or after
"it is still broken", an agent asking for a card number versus refusing one. A bag of
words sees the same tokens in both cases; a model that reads the sequence can tell them
apart.

Rubric, first rule that applies wins:

1. ``compliance_breach``: the agent asked for (or accepted) a full card number, password
   or PIN, or promised what policy forbids ("I guarantee a full refund today").
2. ``escalate``: the issue is unresolved at the end and the customer was angry or
   threatened legal action.
3. ``needs_coaching``: no greeting in the agent's first turn, no recap as the agent's last
   substantive turn, or an angry customer met without empathy.
4. ``compliant`` otherwise.

About 3% of labels are flipped at random (label noise, as between human reviewers).
``drift`` in [0, 1] adds new product lines, new phrasing and voice transcripts (lower case,
no punctuation, "uh"/"um" fillers) in growing shares.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import pandas as pd

COMPLIANT = "compliant"
NEEDS_COACHING = "needs_coaching"
BREACH = "compliance_breach"
ESCALATE = "escalate"
#: The default label set of the synthetic data (schemas list classes sorted by name).
LABELS: tuple[str, ...] = (COMPLIANT, NEEDS_COACHING, BREACH, ESCALATE)
LABEL_NOISE = 0.03

TEXT_COLUMN = "transcript"
LABEL_COLUMN = "label"
ID_COLUMN = "conversation_id"

COMPANIES = ("Acme", "Northwind", "Globex", "Initech", "Contoso", "Umbrella")
AGENTS = ("Sam", "Priya", "Tom", "Aisha", "Lena", "Marco", "Jo", "Kenji", "Ruth", "Diego")

# product -> (device or thing that breaks, a fault description)
PRODUCTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "credit card": ("card", ("my card keeps getting declined", "the card was blocked for no reason")),
    "mobile plan": ("phone", ("i have no signal at home", "my data stopped working")),
    "home broadband": ("router", ("the internet keeps dropping out", "the wifi is really slow")),
    "car insurance": ("policy", ("i can't download my policy documents", "the app shows the wrong car")),
    "streaming subscription": ("app", ("the app won't play anything", "it says my account is locked")),
    "savings account": ("online banking", ("i can't see my interest payment", "the transfer never arrived")),
}
DRIFT_PRODUCTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "solar panel lease": ("inverter", ("the inverter shows a red light", "the panels stopped feeding in")),
    "e-bike subscription": ("bike", ("the battery won't charge", "the bike app won't unlock it")),
}

INTENTS = ("billing", "cancel", "fault", "address", "refund", "upgrade")

ISSUES: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged twice for my {product} this month.",
        "there's a charge on my {product} bill I don't recognise.",
        "my {product} bill is way too high.",
        "why did my {product} payment go up?",
    ),
    "cancel": (
        "I want to cancel my {product}.",
        "please close my {product}.",
        "how do I end my {product} contract?",
        "I'd like to stop my {product} at month end.",
    ),
    "fault": (
        "{fault}.",
        "{fault}, can you help?",
        "since yesterday {fault}.",
        "{fault} and I need it fixed.",
    ),
    "address": (
        "I moved, please update the address on my {product}.",
        "can you change the address on my {product}?",
        "my {product} letters still go to my old address.",
    ),
    "refund": (
        "I never got the refund on my {product}.",
        "I cancelled a {product} add-on but got no refund.",
        "where is the refund for my {product}?",
    ),
    "upgrade": (
        "I'd like to upgrade my {product}.",
        "is there a better deal on my {product}?",
        "can I switch my {product} to the premium option?",
    ),
}
ACTIONS: dict[str, tuple[str, ...]] = {
    "billing": ("I've reversed the duplicate charge.", "I've raised a billing correction."),
    "cancel": ("I've submitted the cancellation for you.", "I've set the {product} to close at month end."),
    "fault": (
        "let's restart the {device}, I'll reset it too.",
        "I've pushed a reset to the {device}.",
    ),
    "address": ("I've updated the address on file.", "the new address is saved now."),
    "refund": ("I've reissued the refund.", "I've chased the refund."),
    "upgrade": ("I've moved you to the premium option.", "the upgrade is applied from today."),
}
# What the agent did; a recap says it whether or not it solved the problem.
RECAPS: dict[str, tuple[str, ...]] = {
    "billing": ("we looked at the charge on your {product}", "I raised a correction for the extra charge"),
    "cancel": ("we went through cancelling your {product}", "I submitted the cancellation"),
    "fault": ("we reset your {device}", "we went through the {device} fault"),
    "address": ("we updated your address", "we checked the address on your {product}"),
    "refund": ("we chased the refund", "I reissued the refund on your {product}"),
    "upgrade": ("we looked at the premium option", "I requested the upgrade"),
}

GREETINGS = (
    "Hi, thanks for contacting {company}, I'm {agent}.",
    "Hello and welcome to {company}, this is {agent}.",
    "Good morning, {agent} from {company} here.",
    "Hey there, thanks for calling {company}.",
    "Welcome to {company} support, I'm {agent}.",
)
DRIFT_GREETINGS = (
    "Greetings from the {company} care team, {agent} speaking.",
    "Hiya, {agent} at {company} here, lovely to hear from you.",
)
OPEN_ASKS = ("How can I help today?", "What can I do for you?", "How can I help you?", "What's the problem?")
ACKS = (
    "Let me take a look.",
    "Let me look into that.",
    "OK, let me check.",
    "Right, let me pull up the account.",
)
CUSTOMER_OPENERS = ("hi,", "hello,", "hey,", "hi there,", "good morning,")

EMPATHY = (
    "So sorry, I know that's frustrating.",
    "I understand, that must be annoying.",
    "Sorry, I can see why you're upset.",
    "That sounds stressful, I'm sorry.",
)
# (question, answer) pairs for the identity check that policy allows
VERIFICATIONS = (
    ("Can I have the last four digits of your card?", "sure, {digits4}."),
    ("Can you confirm your date of birth?", "{dob}."),
    ("What's the email on the account?", "{email}"),
    ("Please confirm the last four digits of the card.", "{digits4}."),
)
SECRETS = ("full card number", "online banking password", "card PIN", "password")
SECRET_ASKS = (
    "To verify you I'll need your {secret}.",
    "Can you read out your {secret}?",
    "Please type your {secret} here.",
    "What's your {secret}?",
)
DRIFT_SECRET_ASKS = ("Just pop your {secret} in here.", "Mind sharing your {secret}?")
SECRET_REPLIES = ("ok, {secret_value}.", "is that safe? ok, {secret_value}.", "I'd rather not.")
WARNINGS = (
    "Reminder: we never ask for your {secret}.",
    "Never share your {secret}, even with me.",
    "Please don't read out your {secret}.",
)
CUSTOMER_OFFERS = ("need my {secret} too?", "should I give you my {secret}?", "want my {secret}?")
OFFER_REFUSED = (
    "No, please don't read out your {secret}.",
    "No, never give me your {secret}.",
    "Please don't type your {secret} here.",
)
OFFER_ACCEPTED = (
    "Yes, go ahead and read out your {secret}.",
    "Sure, give me your {secret}.",
    "Yes please, type your {secret} here.",
)
FORBIDDEN_PROMISES = (
    "I guarantee a full refund today.",
    "I promise the fee is waived for good.",
    "I promise you'll never be charged again.",
)
ALLOWED_PROMISES = (
    "I can't guarantee a full refund, but I've asked.",
    "I can't promise the fee is waived.",
    "I won't promise you'll never be charged again.",
)
RESOLVED = (
    "ok, that fixed it, thanks.",
    "great, it works now.",
    "perfect, it's sorted.",
    "yes, that's done, thanks.",
)
UNRESOLVED = (
    "no, it still isn't working.",
    "that didn't fix anything.",
    "nothing has changed.",
    "it's still wrong.",
)
DRIFT_RESOLVED = ("yep that did the trick.", "all good now cheers.")
DRIFT_UNRESOLVED = ("nope same problem.", "it's still playing up.")
REVERSAL_BRIDGES = ("hold on,", "actually,", "wait,", "hmm,")
GLAD = ("Great, glad to hear it.", "Good to hear.", "Excellent.")
RETRY = ("Let me try something else.", "Let me check again.", "One sec, I'll look again.")
ANGER = (
    "this is ridiculous!",
    "I'm really angry about this.",
    "worst service ever.",
    "I'm sick of calling you.",
)
LEGAL = ("sort it or I'm calling my lawyer.", "I'll report you to the ombudsman.", "I'm taking legal action.")
TICKET = ("I've raised a ticket with the specialists.", "I've escalated this to the tech team.")
FOLLOWUP_QUESTIONS = (
    "one more thing, can I get paperless billing?",
    "also, can you update my phone number?",
    "oh, can I change my payment date?",
    "one more thing, is my direct debit active?",
)
FOLLOWUP_ANSWERS = ("Sure, done.", "Yes, switched on.", "Done, updated.", "Yes, all fine.")
SUMMARIES = ("To recap, {recap}.", "To summarise, {recap}.", "So to sum up, {recap}.")
DRIFT_SUMMARIES = ("Quick wrap-up: {recap}.", "Let me play that back: {recap}.")
CLOSINGS = ("Thanks for contacting {company}, bye.", "Anything else? Take care.", "Thanks for your patience.")
CUSTOMER_BYES = ("thanks, bye.", "cheers.", "ok thanks.", "bye.")
CONFUSER_TURNS = (  # phrases that appear across every outcome
    ("customer", "yes please, go ahead."),
    ("customer", "no, please don't cancel anything else."),
    ("agent", "Sorry, could you repeat that?"),
    ("customer", "I never got an email about it."),
    ("agent", "Sure, go ahead and type it here."),
    ("customer", "no, never mind, it's fine."),
)
CHAT_FILLERS = ("um,", "so,", "like,", "ok so", "well,")
VOICE_FILLERS = ("uh", "um", "er", "you know", "like")


@dataclass
class _Facts:
    product: str
    device: str
    fault: str
    intent: str
    company: str
    agent: str
    customer_first: bool
    greeting: str  # first | late | none
    empathy: bool
    anger: str  # none | angry | legal
    anger_at_end: bool
    resolved: bool
    reversal: bool
    breach: str  # none | asks_secret | accepts_offer | promise
    security_talk: str  # none | warning | offer_refused
    allowed_promise: bool
    followup: bool
    summary: str  # end | middle | none
    confuser: bool
    verify: bool
    voice: bool
    new_phrasing: bool

    def label(self) -> str:
        if self.breach != "none":
            return BREACH
        if not self.resolved and self.anger != "none":
            return ESCALATE
        if self.greeting != "first" or self.summary != "end" or (self.anger != "none" and not self.empathy):
            return NEEDS_COACHING
        return COMPLIANT


def generate_conversations(rows: int, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    """A frame with ``conversation_id``, ``transcript`` and ``label``; same seed, same frame."""
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be in [0, 1], got {drift}")
    rng = random.Random(seed)
    ids, texts, labels = [], [], []
    for i in range(rows):
        facts = _draw_facts(rng, drift)
        label = facts.label()
        if rng.random() < LABEL_NOISE:
            label = rng.choice([x for x in LABELS if x != label])
        ids.append(f"c{seed}-{i:06d}")
        texts.append(_render(rng, facts))
        labels.append(label)
    return pd.DataFrame({ID_COLUMN: ids, TEXT_COLUMN: texts, LABEL_COLUMN: labels})


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _draw_facts(rng: random.Random, drift: float) -> _Facts:
    products = dict(PRODUCTS)
    if rng.random() < 0.5 * drift:
        products = DRIFT_PRODUCTS
    product = rng.choice(sorted(products))
    device, faults = products[product]
    followup = rng.random() < 0.5
    if followup:
        summary = _pick(rng, {"end": 0.72, "middle": 0.2, "none": 0.08})
    else:
        summary = _pick(rng, {"end": 0.88, "none": 0.12})
    breach = "none"
    if rng.random() < 0.2:
        breach = _pick(rng, {"asks_secret": 0.45, "accepts_offer": 0.3, "promise": 0.25})
    anger = _pick(rng, {"none": 0.45, "angry": 0.37, "legal": 0.18})
    resolved = rng.random() < 0.55
    return _Facts(
        product=product,
        device=device,
        fault=rng.choice(faults),
        intent=rng.choice(INTENTS),
        company=rng.choice(COMPANIES),
        agent=rng.choice(AGENTS),
        customer_first=rng.random() < 0.3,
        greeting=_pick(rng, {"first": 0.72, "late": 0.2, "none": 0.08}),
        empathy=rng.random() < 0.75,
        anger=anger,
        # a legal threat after the issue was solved makes no sense; it comes up front then
        anger_at_end=rng.random() < 0.5 and not (resolved and anger == "legal"),
        resolved=resolved,
        reversal=rng.random() < 0.4,
        breach=breach,
        security_talk="none"
        if breach != "none"
        else _pick(rng, {"none": 0.55, "warning": 0.25, "offer_refused": 0.2}),
        allowed_promise=breach != "promise" and rng.random() < 0.25,
        followup=followup,
        summary=summary,
        confuser=rng.random() < 0.25,
        verify=rng.random() < 0.5,
        voice=rng.random() < drift,
        new_phrasing=rng.random() < 0.6 * drift,
    )


class _Renderer:
    def __init__(self, rng: random.Random, facts: _Facts) -> None:
        self.rng = rng
        self.f = facts
        secret = rng.choice(SECRETS)
        fields = {
            "product": facts.product,
            "device": facts.device,
            "fault": facts.fault,
            "company": facts.company,
            "agent": facts.agent,
            "secret": secret,
            "digits4": f"{rng.randint(0, 9999):04d}",
            "dob": f"{rng.randint(1, 28)}/{rng.randint(1, 12)}/{rng.randint(1950, 2004)}",
            "email": f"{rng.choice(AGENTS).lower()}{rng.randint(1, 99)}@example.com",
            "secret_value": " ".join(f"{rng.randint(0, 9999):04d}" for _ in range(4))
            if secret == "full card number"
            else f"{rng.choice(('sunshine', 'dragon', 'letmein', 'hunter'))}{rng.randint(1, 99)}",
        }
        fields["recap"] = rng.choice(RECAPS[facts.intent]).format(**fields)
        self.fields = fields

    def say(self, bank: tuple[str, ...], drift_bank: tuple[str, ...] = ()) -> str:
        if drift_bank and self.f.new_phrasing and self.rng.random() < 0.7:
            bank = drift_bank
        return self.rng.choice(bank).format(**self.fields)


def _render(rng: random.Random, f: _Facts) -> str:
    r = _Renderer(rng, f)
    turns: list[tuple[str, str]] = []

    def agent(*parts: str) -> None:
        if any(parts):
            turns.append(("agent", " ".join(p for p in parts if p)))

    def customer(*parts: str) -> None:
        turns.append(("customer", " ".join(p for p in parts if p)))

    issue = r.say(ISSUES[f.intent])
    anger_line = r.say(LEGAL) if f.anger == "legal" else r.say(ANGER)
    opening_anger = anger_line if f.anger != "none" and not f.anger_at_end else ""
    # The greeting is a turn of its own wherever it comes, so a greeting that opens the
    # conversation and a late one differ only in position, not in words or word pairs.
    greeting = r.say(GREETINGS, DRIFT_GREETINGS)
    if f.customer_first:
        customer(rng.choice(CUSTOMER_OPENERS), issue, opening_anger)
        agent(greeting if f.greeting == "first" else "")
        agent(r.say(ACKS))
    else:
        agent(greeting if f.greeting == "first" else "")
        agent(r.say(OPEN_ASKS))
        customer(issue, opening_anger)
    agent(greeting if f.greeting == "late" else "")
    empathy = r.say(EMPATHY) if opening_anger and f.empathy else ""
    warning = r.say(WARNINGS) if f.security_talk == "warning" else ""
    early_warning = warning if rng.random() < 0.5 else ""
    if f.breach == "asks_secret":
        agent(empathy, r.say(SECRET_ASKS, DRIFT_SECRET_ASKS))
        customer(r.say(SECRET_REPLIES))
    else:
        ask, reply = rng.choice(VERIFICATIONS)
        if f.verify or f.breach != "none" or f.security_talk != "none":
            agent(empathy, early_warning, ask)
            customer(reply.format(**r.fields))
        else:
            agent(empathy, early_warning)
        if f.breach == "accepts_offer" or f.security_talk == "offer_refused":
            customer(r.say(CUSTOMER_OFFERS))
            agent(r.say(OFFER_ACCEPTED if f.breach == "accepts_offer" else OFFER_REFUSED))
    if f.confuser:
        speaker, line = rng.choice(CONFUSER_TURNS)
        turns.append((speaker, line))
    promise = ""
    if f.breach == "promise":
        promise = r.say(FORBIDDEN_PROMISES)
    elif f.allowed_promise:
        promise = r.say(ALLOWED_PROMISES)
    agent(r.say(ACTIONS[f.intent]), promise, "" if early_warning else warning)
    _resolution(r, f, turns, anger_line if f.anger != "none" and f.anger_at_end else "")
    # The recap is a turn of its own too: at the end it follows the follow-up question,
    # in the middle it precedes it; the words are the same.
    summary = r.say(SUMMARIES, DRIFT_SUMMARIES)
    if f.followup:
        agent(summary if f.summary == "middle" else "")
        customer(r.say(FOLLOWUP_QUESTIONS))
        agent(r.say(FOLLOWUP_ANSWERS))
    agent(summary if f.summary == "end" else "")
    ending = rng.random()
    if ending < 0.25:
        customer(r.say(CUSTOMER_BYES))
    elif ending < 0.4:
        agent(r.say(CLOSINGS))
    elif ending < 0.5:
        customer(r.say(CUSTOMER_BYES))
        agent(r.say(CLOSINGS))
    return "\n".join(f"{who}: {_noisy(rng, text, f.voice, who)}" for who, text in turns)


def _resolution(r: _Renderer, f: _Facts, turns: list[tuple[str, str]], late_anger: str) -> None:
    """The customer's verdict(s) on the fix and the agent's reactions.

    With a reversal both verdicts appear ("working now" and "still broken") and only
    their order says how the conversation ended.
    """
    rng = r.rng
    states = [f.resolved]
    if f.reversal:
        states.insert(0, not f.resolved)
    for i, resolved in enumerate(states):
        last = i == len(states) - 1
        verdict = r.say(RESOLVED, DRIFT_RESOLVED) if resolved else r.say(UNRESOLVED, DRIFT_UNRESOLVED)
        if rng.random() < 0.25:
            verdict = f"{rng.choice(REVERSAL_BRIDGES)} {verdict}"
        turns.append(("customer", f"{verdict} {late_anger}" if last and late_anger else verdict))
        empathy = r.say(EMPATHY) if last and late_anger and f.empathy else ""
        if resolved:
            reaction = r.say(GLAD) if rng.random() < 0.6 else ""
        else:
            reaction = rng.choice((r.say(RETRY), r.say(TICKET), f"{r.say(RETRY)} {r.say(TICKET)}"))
        if empathy or reaction:
            turns.append(("agent", f"{empathy} {reaction}".strip()))


_WORD = re.compile(r"[A-Za-z]{4,}")
_PUNCT = re.compile(r"[^\w\s'@/]")


def _noisy(rng: random.Random, text: str, voice: bool, who: str) -> str:
    text = _WORD.sub(lambda m: _typo(rng, m.group(0)) if rng.random() < 0.02 else m.group(0), text)
    if voice:
        words = _PUNCT.sub("", text.lower()).split()
        out: list[str] = []
        for word in words:
            if rng.random() < 0.08:
                out.append(rng.choice(VOICE_FILLERS))
            out.append(word)
        return " ".join(out)
    if who == "customer":
        if rng.random() < 0.12:
            text = f"{rng.choice(CHAT_FILLERS)} {text}"
        if rng.random() < 0.4:
            text = text.lower()
    return text


def _typo(rng: random.Random, word: str) -> str:
    i = rng.randrange(len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:  # swap two letters
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:  # drop a letter
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]  # double a letter
