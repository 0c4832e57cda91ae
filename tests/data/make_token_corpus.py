#!/usr/bin/env python3
"""Build tests/data/token_corpus.jsonl: >= 200 varied chat requests for measuring the input-token
estimator (src/provider/tokens.c). Deterministic (fixed seed); the texts come from this
repository's own docs and sources, from hand-written snippets below (22 languages), and from
generated data (numbers, tables, ids, base64, emoji). Re-run only to change the corpus; then
re-run tests/data/tokref/count.mjs for the reference counts. See docs/pricing.md.
"""
import base64
import glob
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
rnd = random.Random(20261122)

SHORT = [
    "Hi!", "What is the capital of Australia?", "Summarize this in one sentence.",
    "Translate 'good morning' into French.", "Write a haiku about autumn rain.",
    "Explain recursion to a five-year-old.", "How many legs does a spider have?",
    "Give me three names for a coffee shop.", "What's 17 times 23?",
    "Is it safe to eat raw cookie dough?", "List the planets in order from the sun.",
    "Fix the grammar: 'me and him goes to the store yesterday'.",
    "What does HTTP 429 mean?", "Why is the sky blue?", "Recommend a book about habits.",
    "Can you explain the difference between TCP and UDP in simple terms?",
    "Draft a polite email declining a meeting invitation for Thursday afternoon.",
    "What are the side effects of ibuprofen?", "Convert 72 degrees Fahrenheit to Celsius.",
    "Tell me a joke about programmers.", "ok", "thanks!!", "continue",
    "Please rewrite the following paragraph to be more concise and professional.",
    "I need a regex that matches ISO 8601 dates like 2026-11-22T10:00:00Z.",
]

LANG = {
    "fr": "Bonjour ! Pourriez-vous m'expliquer comment fonctionne la photosynthèse, en termes "
          "simples ? Je prépare un exposé pour ma classe de cinquième et je voudrais éviter le "
          "jargon scientifique. Merci d'avance pour votre aide précieuse.",
    "de": "Guten Tag! Ich möchte eine Beschwerde über eine verspätete Lieferung schreiben. Die "
          "Bestellung Nr. 48213 hätte am Donnerstag ankommen sollen, ist aber bis heute nicht "
          "eingetroffen. Können Sie mir einen höflichen, aber bestimmten Text formulieren?",
    "es": "¿Cuáles son las diferencias principales entre el español de España y el de México? "
          "Me interesan sobre todo el vocabulario cotidiano, la pronunciación y el uso de "
          "«vosotros» frente a «ustedes».",
    "it": "Ciao! Sto organizzando un viaggio di una settimana in Sicilia a settembre. Quali città "
          "mi consigli di visitare e quali piatti tipici non dovrei assolutamente perdere?",
    "pt": "Olá! Preciso de ajuda para escrever uma carta de apresentação para uma vaga de "
          "engenheiro de software em Lisboa. Tenho cinco anos de experiência com Python e Go.",
    "nl": "Kun je uitleggen hoe de Nederlandse belastingaangifte werkt voor iemand die net uit "
          "het buitenland is verhuisd? Ik ben in maart begonnen met werken in Utrecht.",
    "pl": "Cześć! Czy możesz wyjaśnić, jak działa odmiana rzeczowników przez przypadki w języku "
          "polskim? Uczę się od pół roku i ciągle mylę miejscownik z narzędnikiem.",
    "ru": "Здравствуйте! Помогите, пожалуйста, составить план подготовки к марафону за "
          "шестнадцать недель. Сейчас я пробегаю около тридцати километров в неделю.",
    "uk": "Привіт! Розкажи, будь ласка, коротко про історію Києва та які музеї варто відвідати "
          "за два дні. Мене особливо цікавить архітектура.",
    "el": "Γεια σας! Θα ήθελα να μάθω περισσότερα για την αρχαία ελληνική φιλοσοφία. Ποια είναι "
          "η κύρια διαφορά ανάμεσα στον Πλάτωνα και τον Αριστοτέλη;",
    "tr": "Merhaba! İstanbul'da üç gün geçireceğim. Tarihi yarımadada hangi yerleri görmeliyim "
          "ve toplu taşımayı nasıl kullanabilirim?",
    "ar": "مرحبا! هل يمكنك أن تشرح لي الفرق بين الذكاء الاصطناعي والتعلم الآلي بطريقة بسيطة؟ "
          "أنا طالب في السنة الأولى في كلية الهندسة.",
    "he": "שלום! אני מחפש מתכון לחלה מתוקה לשבת. האם תוכל לתת לי הוראות מפורטות, כולל זמני "
          "התפחה ואפייה?",
    "hi": "नमस्ते! क्या आप मुझे बता सकते हैं कि घर पर बगीचा शुरू करने के लिए कौन से पौधे सबसे "
          "आसान हैं? मेरे पास एक छोटी बालकनी है जहाँ सुबह धूप आती है।",
    "bn": "হ্যালো! আমি একটি ছোট ব্যবসা শুরু করতে চাই। প্রথম ছয় মাসের জন্য একটি সহজ বাজেট "
          "পরিকল্পনা তৈরি করতে সাহায্য করবেন?",
    "th": "สวัสดีครับ ช่วยแนะนำวิธีฝึกภาษาอังกฤษด้วยตัวเองสำหรับผู้เริ่มต้นหน่อยได้ไหมครับ "
          "ผมมีเวลาวันละประมาณหนึ่งชั่วโมง",
    "vi": "Xin chào! Bạn có thể giải thích cách nấu phở bò truyền thống không? Tôi muốn biết "
          "những loại gia vị nào là quan trọng nhất.",
    "zh": "你好！请帮我写一封邮件给我的老板，说明我下周三需要请假一天去看医生。语气要礼貌但简洁。"
          "另外，请告诉我如何安排工作交接。",
    "ja": "こんにちは。来月、京都に三泊四日で旅行に行きます。紅葉の時期におすすめの寺院や、"
          "混雑を避けるコツがあれば教えてください。",
    "ko": "안녕하세요! 파이썬으로 웹 크롤러를 만들고 싶은데, 초보자가 알아야 할 기본 개념과 "
          "주의해야 할 법적 문제에 대해 설명해 주실 수 있나요?",
    "id": "Halo! Bisakah kamu membantu saya membuat rencana belajar untuk ujian masuk "
          "universitas? Saya punya waktu tiga bulan dan lemah di matematika.",
    "sw": "Habari! Naomba unisaidie kuandika barua ya kuomba kazi ya ualimu katika shule ya "
          "msingi jijini Nairobi. Nina uzoefu wa miaka mitatu.",
}

SYSTEMS = [
    "You are a helpful assistant.",
    "You are a senior support agent for Acme Cloud. Answer in at most three sentences, cite the "
    "relevant documentation page when you can, and never promise refunds.",
    "You are a careful code reviewer. Point out bugs first, then style. Use bullet points.",
    "Tu es un assistant qui répond toujours en français, de façon concise.",
    "You translate between English and Japanese. Output only the translation.",
]

EMOJI = ["🎉", "🚀", "😂", "👍🏽", "❤️", "🔥", "🤖", "👨‍👩‍👧", "✅", "🇫🇷", "☕", "🌧️"]


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def window(text, lo, hi):
    n = rnd.randint(lo, hi)
    if len(text) <= n:
        return text
    start = rnd.randint(0, len(text) - n)
    return text[start:start + n]


def files(pattern):
    return sorted(glob.glob(os.path.join(REPO, pattern), recursive=True))


def msg(role, content):
    return {"role": role, "content": content}


items = []


def add(kind, messages):
    items.append({"id": "%s-%03d" % (kind, len(items)), "kind": kind, "messages": messages})


for s in SHORT:
    add("short", [msg("user", s)])
prose = [read(p) for p in files("docs/**/*.md") + files("README.md")]
prose += [read(p) for p in sorted(glob.glob("/usr/share/common-licenses/*"))[:6]
          if os.path.isfile(p)]
for i in range(35):
    add("prose", [msg("system", rnd.choice(SYSTEMS)),
                  msg("user", "Please summarize:\n\n" + window(rnd.choice(prose), 200, 4000))])
code = [read(p) for p in files("src/**/*.c") + files("src/**/*.h")]
pycode = [read(p) for p in files("tests/integration/*.py")]
jscode = [read(p) for p in files("tests/e2e/*.mjs")]
for i in range(30):
    src = rnd.choice([code, code, pycode, jscode])
    add("code", [msg("system", SYSTEMS[2]),
                 msg("user", "Review this:\n```\n" + window(rnd.choice(src), 150, 3000) + "\n```")])
for lang, text in sorted(LANG.items()):
    add("lang-" + lang, [msg("user", text)])
    add("lang-" + lang, [msg("system", SYSTEMS[0]), msg("user", text),
                         msg("assistant", LANG[rnd.choice(sorted(LANG))]), msg("user", text[:60])])
for i in range(15):
    rows = ["date,region,units,revenue_usd"]
    for _ in range(rnd.randint(3, 60)):
        rows.append("2026-%02d-%02d,%s,%d,%.2f" % (rnd.randint(1, 12), rnd.randint(1, 28),
                                                  rnd.choice(["EU", "US-East", "APAC", "LATAM"]),
                                                  rnd.randint(0, 99999), rnd.random() * 1e6))
    add("table", [msg("user", "What trend do you see?\n" + "\n".join(rows))])
for i in range(12):
    obj = {"users": [{"id": rnd.randint(1, 10**9), "name": rnd.choice(["Ana", "Bo", "Chen", "Dara"]),
                      "email": "user%d@example.com" % rnd.randint(1, 9999),
                      "active": rnd.random() < 0.5, "score": round(rnd.random() * 100, 3),
                      "tags": rnd.sample(["admin", "beta", "eu", "trial", "vip"], 2)}
                     for _ in range(rnd.randint(1, 15))]}
    add("json", [msg("user", "Validate this JSON:\n" + json.dumps(obj, indent=rnd.choice([None, 2])))])
for i in range(12):
    ids = []
    for _ in range(rnd.randint(2, 30)):
        ids.append(rnd.choice([
            "%08x-%04x-%04x-%04x-%012x" % tuple(rnd.getrandbits(b) for b in (32, 16, 16, 16, 48)),
            "%040x" % rnd.getrandbits(160),
            base64.b64encode(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(8, 48)))).decode(),
            "https://example.com/api/v%d/items/%d?ref=%x" % (rnd.randint(1, 3), rnd.randint(1, 10**6),
                                                             rnd.getrandbits(32)),
        ]))
    add("ids", [msg("user", "Which of these look malformed?\n" + "\n".join(ids))])
for i in range(15):
    parts = []
    for _ in range(rnd.randint(3, 25)):
        parts.append(rnd.choice(SHORT) + " " + "".join(rnd.choice(EMOJI) for _ in range(rnd.randint(0, 4))))
    add("emoji", [msg("user", " ".join(parts))])
for i in range(12):
    n = rnd.randint(5, 200)
    add("numbers", [msg("user", "Sum these: " + ", ".join(str(rnd.randint(0, 10**rnd.randint(1, 9)))
                                                         for _ in range(n)))])
for i in range(20):
    turns = [msg("system", rnd.choice(SYSTEMS))]
    for t in range(rnd.randint(2, 8)):
        turns.append(msg("user", rnd.choice(SHORT + [window(rnd.choice(prose), 50, 600)])))
        turns.append(msg("assistant", window(rnd.choice(prose), 50, 1200)))
    turns.append(msg("user", rnd.choice(SHORT)))
    add("dialog", turns)
for i in range(8):
    yaml = "\n".join("%s%s: %s" % ("  " * rnd.randint(0, 4), rnd.choice(["name", "port", "timeout", "model", "weight"]),
                                   rnd.choice(["app/chat", "4000", "30", "true", "openai/gpt-4o-mini"]))
                     for _ in range(rnd.randint(5, 60)))
    add("yaml", [msg("user", "Check this config:\n" + yaml)])

assert len(items) >= 200, len(items)
with open(os.path.join(HERE, "token_corpus.jsonl"), "w", encoding="utf-8") as f:
    for it in items:
        f.write(json.dumps(it, ensure_ascii=False) + "\n")
print("%d prompts" % len(items))
