# ruff: noqa: E501  (the support texts are data; wrapping them would only hurt reading)
"""Write the bundled sample dataset: customer support for Driftnote, a note-taking and sync app.

    python data/sample/make_sample.py

Synthetic, written by us. Each topic has one house-style answer and several customer questions;
a seeded mix of customer context makes the questions vary. Planted problems (duplicates,
near-duplicates, PII, malformed rows, undecodable bytes, bad JSON) are listed in PLANTED.md.
"""

import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
GREETING = "Hi there, thanks for contacting Driftnote support!"
SIGNOFF = "— The Driftnote Support Team"

# topic: (answer body, [questions])
TOPICS: dict[str, tuple[str, list[str]]] = {
    "reset-password": (
        "Go to driftnote.app/reset, enter your account e-mail and follow the link we send; it stays valid for 30 minutes.",
        [
            "How do I reset my password?",
            "I forgot my password and can't log in",
            "what's the way to change a password I no longer remember",
        ],
    ),
    "enable-2fa": (
        "Open Settings > Security > Two-factor authentication, choose an authenticator app and scan the QR code, then save your ten backup codes somewhere safe.",
        [
            "How can I turn on two-factor authentication?",
            "Is there 2FA and how do I enable it",
            "I want to add an authenticator app to my login",
        ],
    ),
    "lost-2fa": (
        "Sign in with one of your backup codes from Settings > Security; if you lost them too, use Account recovery on the login page and we verify you by e-mail within 24 hours.",
        [
            "I lost my phone with the authenticator app",
            "My 2FA device is gone, how do I get back in?",
            "can't get 2fa codes anymore, new phone",
        ],
    ),
    "sync-not-working": (
        "Check that Sync is on in Settings > Sync, then press Sync now; if notes still don't appear, sign out and back in on the device that is behind.",
        [
            "My notes are not syncing between laptop and phone",
            "Sync stopped working since yesterday",
            "changes on my iPad never show up on the desktop app",
        ],
    ),
    "offline-mode": (
        "Driftnote works offline on every app: edits are stored locally and sync automatically when you reconnect; turn on Settings > Offline > Keep all notebooks to have everything available.",
        [
            "Can I use Driftnote without internet?",
            "Does the app work on a plane with no wifi",
            "how does offline mode work",
        ],
    ),
    "export-markdown": (
        "Open the notebook, choose File > Export > Markdown, and Driftnote saves a .zip with one .md file per note and your images in an assets folder.",
        [
            "How do I export my notes as Markdown?",
            "I need my notebook in .md files",
            "Is there a markdown export option",
        ],
    ),
    "export-pdf": (
        "Open the note, choose File > Export > PDF and pick the page size; to export a whole notebook, right-click it in the sidebar and choose Export as PDF.",
        [
            "Can I save a note as a PDF?",
            "How to export an entire notebook to pdf",
            "print my notes to PDF format",
        ],
    ),
    "plans-compare": (
        "Free includes 3 devices and 1 GB of storage, Plus ($6 a month) has unlimited devices and 50 GB, and Team ($10 per user a month) adds shared workspaces and admin controls.",
        [
            "What is the difference between Free, Plus and Team?",
            "Which plan should I pick",
            "how much storage does each plan include",
        ],
    ),
    "upgrade-plan": (
        "Go to Settings > Account > Plan and choose Upgrade; the new plan starts immediately and we charge only the prorated difference for this billing period.",
        [
            "How do I upgrade to Plus?",
            "I want to move from Free to a paid plan",
            "where is the upgrade button",
        ],
    ),
    "cancel-subscription": (
        "Go to Settings > Account > Plan and choose Cancel subscription; you keep Plus until the end of the paid period and then move to Free without losing notes.",
        [
            "How do I cancel my subscription?",
            "I want to stop paying for Plus",
            "cancel my plan please, no longer need it",
        ],
    ),
    "refund": (
        "We refund any charge made in the last 14 days: reply with the last four digits of the card or the invoice number and the refund reaches you within 5 to 10 business days.",
        [
            "Can I get a refund?",
            "I was charged by mistake and want my money back",
            "refund for the annual plan I just bought",
        ],
    ),
    "invoice": (
        "Download every invoice from Settings > Account > Billing history; to add a company name or VAT number, edit Billing details before the next charge.",
        [
            "Where can I find my invoices?",
            "I need a receipt for my company",
            "how do I add my VAT number to invoices",
        ],
    ),
    "payment-failed": (
        "Update your card in Settings > Account > Billing and press Retry payment; we keep your Plus features for 7 days while a payment is failing.",
        [
            "My payment failed",
            "card declined when renewing",
            "why did my subscription payment not go through",
        ],
    ),
    "storage-full": (
        "Check usage in Settings > Account > Storage; empty the Trash, remove large attachments, or upgrade to Plus for 50 GB.",
        [
            "It says my storage is full",
            "I ran out of space on the free plan",
            "how to free up storage",
        ],
    ),
    "restore-deleted": (
        "Deleted notes stay in Trash for 30 days: open Trash in the sidebar, select the note and choose Restore.",
        [
            "I deleted a note by accident",
            "How do I recover a deleted notebook?",
            "can deleted notes be brought back",
        ],
    ),
    "version-history": (
        "Open the note and choose More > Version history; Plus keeps every version for a year and Free keeps the last 7 days.",
        [
            "Can I see older versions of a note?",
            "someone overwrote my note, how do I go back",
            "is there a revision history",
        ],
    ),
    "share-note": (
        "Open the note, press Share, and invite people by e-mail as viewers or editors, or create a link with Anyone with the link can view.",
        [
            "How do I share a note with a colleague?",
            "Can I send someone a link to my note",
            "share notebook with my team",
        ],
    ),
    "permissions": (
        "Open Share on the note or notebook, then use the role menu next to each person to switch between Viewer and Editor or remove them.",
        [
            "How do I change what someone can do with my shared note?",
            "make a collaborator read-only",
            "remove access for a person",
        ],
    ),
    "api-key": (
        "Create a key in Settings > Developer > API keys, copy it once, and send it as a Bearer token; keys can be revoked anytime from the same page.",
        [
            "How do I get an API key?",
            "Where do I create a token for the API",
            "I need programmatic access to my notes",
        ],
    ),
    "rate-limits": (
        "The API allows 60 requests per minute on Free and 600 on Plus and Team; a 429 response includes a Retry-After header telling you when to try again.",
        [
            "What are the API rate limits?",
            "I'm getting 429 errors from the API",
            "how many requests per minute can I make",
        ],
    ),
    "import-evernote": (
        "Export your notebooks from Evernote as .enex files, then in Driftnote choose File > Import > Evernote and select them; tags and attachments come along.",
        [
            "Can I import from Evernote?",
            "How do I move my notes from Evernote",
            "migrate enex files into driftnote",
        ],
    ),
    "import-notion": (
        "Export your Notion workspace as Markdown & CSV, unzip it, then choose File > Import > Markdown folder in Driftnote.",
        [
            "How do I import my Notion pages?",
            "moving from notion, what's the process",
            "bring notion export into driftnote",
        ],
    ),
    "delete-account": (
        "Go to Settings > Account > Delete account and confirm with your password; everything is erased within 30 days, so export your notes first.",
        [
            "How do I delete my account?",
            "I want all my data removed",
            "close my driftnote account permanently",
        ],
    ),
    "change-email": (
        "Go to Settings > Account > E-mail, enter the new address and confirm the link we send to it; your login changes once it is confirmed.",
        [
            "How do I change my e-mail address?",
            "update the email on my account",
            "I switched jobs and need a new login email",
        ],
    ),
    "desktop-install": (
        "Download the app for Windows, macOS or Linux from driftnote.app/download and sign in with your account; your notes sync down automatically.",
        [
            "Is there a desktop app?",
            "How do I install Driftnote on Windows",
            "linux version available?",
        ],
    ),
    "mobile-app": (
        "Install Driftnote from the App Store or Google Play and sign in; turn on Settings > Offline if you want notes available without signal.",
        ["Do you have a mobile app?", "how do I get driftnote on android", "iphone app where"],
    ),
    "dark-mode": (
        "Choose Settings > Appearance > Theme and select Dark, Light or Match system; each device keeps its own choice.",
        [
            "Is there a dark mode?",
            "how do I switch the theme to dark",
            "the app is too bright at night",
        ],
    ),
    "search-tips": (
        "Use the search bar with quotes for exact phrases, tag:name to filter by tag and notebook:name to search one notebook; text inside PDFs and images is searchable on Plus.",
        [
            "How do I search my notes better?",
            "can I search inside a specific notebook",
            "search by tag",
        ],
    ),
    "tags": (
        "Type # followed by a name in any note to add a tag, and find all tagged notes under Tags in the sidebar; rename or merge tags there too.",
        ["How do tags work?", "can I organize notes with tags", "rename a tag everywhere"],
    ),
    "attachments-size": (
        "Each attachment can be up to 25 MB on Free and 200 MB on Plus and Team; larger files can be linked from cloud storage instead.",
        [
            "What's the maximum attachment size?",
            "my video won't upload to a note",
            "file too large error when attaching",
        ],
    ),
    "team-invite": (
        "Team admins invite people from Admin > Members > Invite; each new member adds one seat to the next invoice.",
        [
            "How do I add people to our Team workspace?",
            "invite my coworkers to the team plan",
            "adding members to team",
        ],
    ),
    "team-admin-remove": (
        "In Admin > Members, open the person's menu and choose Remove; their shared notes stay in the workspace and the seat is freed on the next invoice.",
        [
            "How do I remove someone from our team?",
            "a colleague left the company, remove user",
            "free up a seat in team plan",
        ],
    ),
    "sso": (
        "Team workspaces support SAML single sign-on with Okta, Azure AD and Google: set it up in Admin > Security > SSO with your identity provider's metadata URL.",
        ["Do you support SSO?", "can we log in with Okta", "how to configure SAML for our team"],
    ),
    "encryption": (
        "All notes are encrypted in transit with TLS and at rest with AES-256; for extra protection, lock a note with a passphrase under More > Encrypt note.",
        [
            "Are my notes encrypted?",
            "how secure is my data",
            "can I password protect a single note",
        ],
    ),
    "login-loop": (
        "Clear the app's cache under Settings > Advanced > Reset local data, or in the browser clear cookies for driftnote.app, then sign in again.",
        [
            "The app keeps asking me to log in",
            "stuck in a login loop",
            "I log in and it kicks me out again",
        ],
    ),
    "slow-app": (
        "Update to the latest version, then try Settings > Advanced > Rebuild search index; very large notebooks load faster with Offline > Keep all notebooks turned off.",
        ["The app is very slow", "driftnote takes forever to open", "typing lags in big notes"],
    ),
    "templates": (
        "Choose New note > From template to pick a built-in template, or save any note as your own with More > Save as template.",
        ["Are there note templates?", "how do I make my own template", "reuse a note layout"],
    ),
    "reminders": (
        "Open a note, press the bell icon and set a date and time; reminders arrive as notifications on every device where you are signed in.",
        [
            "Can I set reminders on notes?",
            "how do I get notified about a note later",
            "due dates for notes",
        ],
    ),
    "web-clipper": (
        "Install the Driftnote Web Clipper for Chrome, Firefox or Edge from driftnote.app/clipper, then click its icon to save a page, a selection or a screenshot.",
        [
            "Is there a browser extension?",
            "how do I save web pages to driftnote",
            "web clipper for firefox",
        ],
    ),
    "student-discount": (
        "Students get Plus at half price: apply at driftnote.app/students with your school e-mail and the discount applies to the next renewal.",
        [
            "Do you have a student discount?",
            "I'm a student, is Plus cheaper for me",
            "education pricing",
        ],
    ),
    "data-location": (
        "Notes are stored in data centres in the EU (Frankfurt) by default; Team workspaces can choose US or EU storage in Admin > Data residency.",
        ["Where is my data stored?", "are servers in the EU", "can we keep our data in the US"],
    ),
    "markdown-editing": (
        "The editor understands Markdown shortcuts as you type, such as # for headings and - for lists; switch a note to raw Markdown with View > Source mode.",
        [
            "Can I write in Markdown?",
            "does the editor support markdown syntax",
            "view the source markdown of a note",
        ],
    ),
}

CONTEXTS = [
    "",
    "",
    "Hello, ",
    "Hi team, ",
    "Quick question: ",
    "Sorry to bother you, ",
    "I'm on the Plus plan. ",
    "I use the Android app. ",
    "Using the Mac desktop app here. ",
    "Our company is on Team. ",
    "I've been a user for two years. ",
]
ENDINGS = ["", "", " Thanks!", " Thank you in advance.", " Any help appreciated.", " Cheers"]


def answer(topic: str) -> str:
    return f"{GREETING} {TOPICS[topic][0]} {SIGNOFF}"


def clean_records(rng: random.Random) -> list[dict]:
    """Every question of every topic, twice with different customer context."""
    records = []
    for topic, (_, questions) in TOPICS.items():
        for q_index, question in enumerate(questions):
            for variant in range(2):
                context = CONTEXTS[rng.randrange(len(CONTEXTS))] if variant else ""
                ending = ENDINGS[rng.randrange(len(ENDINGS))] if variant else ""
                records.append(
                    {
                        "id": f"{topic}-{q_index}{'ab'[variant]}",
                        "prompt": f"{context}{question}{ending}".strip(),
                        "response": answer(topic),
                    }
                )
    return records


def main() -> None:
    rng = random.Random(7)
    records = clean_records(rng)
    rng.shuffle(records)
    # Near-duplicate variants differ only by context/ending, so drop the second variant where
    # its context is empty (it would be an exact duplicate of the first, unplanned).
    seen, unique = set(), []
    for r in records:
        if r["prompt"] not in seen:
            seen.add(r["prompt"])
            unique.append(r)
    records = unique

    pii = [
        {
            "id": "pii-email",
            "prompt": "My login is jane.doe@example.com and the reset mail never arrives",
            "response": answer("reset-password"),
        },
        {
            "id": "pii-phone",
            "prompt": "Please call me back at +1 (415) 555-0132 about my refund",
            "response": answer("refund"),
        },
        {
            "id": "pii-card",
            "prompt": "You charged my card 4111 1111 1111 1111 twice, I want a refund",
            "response": answer("refund"),
        },
        {
            "id": "pii-not-card",
            "prompt": "My order number is 1234 5678 9012 3456, where is the invoice?",
            "response": answer("invoice"),
        },
        {
            "id": "pii-ip",
            "prompt": "Sync fails from my office network, our gateway IP is 203.0.113.42",
            "response": answer("sync-not-working"),
        },
        {
            "id": "pii-iban",
            "prompt": "Can you refund to my bank account DE89 3704 0044 0532 0130 00 instead of the card?",
            "response": answer("refund"),
        },
    ]
    exact_dups = [dict(records[i], id=f"dup-{i}") for i in (3, 17, 42, 88)]
    near_dups = []
    for i in (5, 23, 61):
        r = records[i]
        near_dups.append(
            dict(
                r,
                id=f"near-{i}",
                prompt=r["prompt"].rstrip("?!.") + "??",
                response=r["response"].replace("Hi there", "Hi  there"),
            )
        )
    malformed = [
        {"id": "bad-missing-response", "prompt": "How do I export to Word?"},
        {"id": "bad-empty-prompt", "prompt": "   ", "response": answer("dark-mode")},
        {
            "id": "bad-too-long",
            "prompt": "Please read my whole story. " * 200,
            "response": answer("slow-app"),
        },
        {
            "id": "bad-number-response",
            "prompt": "What is the API rate limit on Free?",
            "response": 60,
        },
    ]

    main_rows = records[:180] + pii + exact_dups[:2] + near_dups + malformed
    lines = [json.dumps(r, ensure_ascii=False) for r in main_rows]
    lines.insert(40, '{"id": "bad-json", "prompt": "unterminated')
    body = "\n".join(lines).encode() + b"\n"
    # An undecodable line: Latin-1 bytes that are not valid UTF-8.
    body += b'{"id": "bad-bytes", "prompt": "caf\xe9 cr\xe8me", "response": "x"}\n'
    (HERE / "support_tickets.jsonl").write_bytes(body)

    chats = []
    for r in records[180:205]:
        chats.append(
            {
                "id": f"chat-{r['id']}",
                "messages": [
                    {"role": "system", "content": "You are Driftnote's support assistant."},
                    {"role": "user", "content": r["prompt"]},
                    {"role": "assistant", "content": r["response"]},
                ],
            }
        )
    chats.append(
        {
            "id": "bad-role-order",
            "messages": [
                {"role": "assistant", "content": answer("tags")},
                {"role": "user", "content": "How do tags work?"},
            ],
        }
    )
    (HERE / "chat_sessions.json").write_text(json.dumps(chats, indent=1, ensure_ascii=False) + "\n")

    with (HERE / "legacy_export.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "prompt", "response"])
        writer.writeheader()
        for r in records[205:222] + exact_dups[2:]:
            writer.writerow(r)

    partner = [json.dumps(r, ensure_ascii=False) for r in records[222:]]
    (HERE / "partner_feed.jsonl").write_bytes(("\ufeff" + "\r\n".join(partner) + "\r\n").encode())
    print(
        f"clean={len(records)} pii={len(pii)} exact_dups={len(exact_dups)} "
        f"near_dups={len(near_dups)} malformed={len(malformed) + 3}"
    )


if __name__ == "__main__":
    main()
