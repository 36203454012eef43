# ruff: noqa: E501  (the support texts are data; wrapping them would only hurt reading)
"""Write the bundled sample dataset: customer support for Driftnote, a note-taking and sync app.

    python data/sample/make_sample.py

Synthetic, written by us. Each topic has one house-style answer and 4-6 customer questions
written as real paraphrases (different structure and context, not a word swapped), so a model
can learn the answer while MinHash dedup keeps them all. Planted problems (duplicates,
near-duplicates, PII, malformed rows, undecodable bytes, bad JSON) are listed in PLANTED.md.
Stdlib only and seeded: re-running writes the same bytes.
"""

import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
GREETING = "Hi there, thanks for contacting Driftnote support!"
SIGNOFF = "— The Driftnote Support Team"
SYSTEM = "You are Driftnote's support assistant. Answer in the Driftnote house style."

# topic: (answer body, [customer questions])
TOPICS: dict[str, tuple[str, list[str]]] = {
    "reset-password": (
        "Go to driftnote.app/reset, enter your account e-mail and follow the link we send; it stays valid for 30 minutes.",
        [
            "How do I reset my password?",
            "I forgot my password and can't log in",
            "what's the way to change a password I no longer remember",
            "Tried logging in on my work laptop this morning and apparently the password I thought I had is wrong. Is there some kind of reset link?",
            "pasword reset pls, locked out of my account since the weekend",
        ],
    ),
    "enable-2fa": (
        "Open Settings > Security > Two-factor authentication, choose an authenticator app and scan the QR code, then save your ten backup codes somewhere safe.",
        [
            "How can I turn on two-factor authentication?",
            "Is there 2FA and how do I enable it",
            "I want to add an authenticator app to my login",
            "Our IT policy now requires a second factor on every tool we use. Where would I switch that on for Driftnote?",
            "does driftnote support google authenticator or similar for extra security when signing in",
        ],
    ),
    "lost-2fa": (
        "Sign in with one of your backup codes from Settings > Security; if you lost them too, use Account recovery on the login page and we verify you by e-mail within 24 hours.",
        [
            "I lost my phone with the authenticator app",
            "My 2FA device is gone, how do I get back in?",
            "can't get 2fa codes anymore, new phone",
            "My old phone broke and the authenticator codes were only on it. Now Driftnote wants a six digit code I simply don't have. What can I do?",
            "I have no authenticator and no backup codes, am I locked out for good?",
        ],
    ),
    "sync-not-working": (
        "Check that Sync is on in Settings > Sync, then press Sync now; if notes still don't appear, sign out and back in on the device that is behind.",
        [
            "My notes are not syncing between laptop and phone",
            "Sync stopped working since yesterday",
            "changes on my iPad never show up on the desktop app",
            "I wrote three notes on the train on my phone, got home, opened the Windows app and none of them are there. Is sync broken?",
            "Why is the desktop version stuck on old content while my phone has the latest edits",
        ],
    ),
    "offline-mode": (
        "Driftnote works offline on every app: edits are stored locally and sync automatically when you reconnect; turn on Settings > Offline > Keep all notebooks to have everything available.",
        [
            "Can I use Driftnote without internet?",
            "Does the app work on a plane with no wifi",
            "how does offline mode work",
            "I'm heading to a cabin with no signal for a week and need my recipes and journal. Will I still be able to open and edit everything?",
            "Will edits I make offline be lost, or do they sync later?",
        ],
    ),
    "export-markdown": (
        "Open the notebook, choose File > Export > Markdown, and Driftnote saves a .zip with one .md file per note and your images in an assets folder.",
        [
            "How do I export my notes as Markdown?",
            "I need my notebook in .md files",
            "Is there a markdown export option",
            "I want to publish some of my writing with a static site generator that reads plain text files. Can I get a notebook out in that format, images included?",
            "export to markdwon possible?",
        ],
    ),
    "export-pdf": (
        "Open the note, choose File > Export > PDF and pick the page size; to export a whole notebook, right-click it in the sidebar and choose Export as PDF.",
        [
            "Can I save a note as a PDF?",
            "How to export an entire notebook to pdf",
            "print my notes to PDF format",
            "My professor wants the lab notes handed in as one document he can open anywhere. Is there a way to turn a notebook into a single PDF file?",
            "is there a pdf export on the mobile app or only desktop",
        ],
    ),
    "plans-compare": (
        "Free includes 3 devices and 1 GB of storage, Plus ($6 a month) has unlimited devices and 50 GB, and Team ($10 per user a month) adds shared workspaces and admin controls.",
        [
            "What is the difference between Free, Plus and Team?",
            "Which plan should I pick",
            "how much storage does each plan include",
            "We are a small design studio of five people deciding between your paid tiers. Could you lay out what each one costs and what it gives us?",
            "Is Plus worth it over the free version? what do I actually get",
            "pricing page is confusing, can you summarise the plans",
        ],
    ),
    "upgrade-plan": (
        "Go to Settings > Account > Plan and choose Upgrade; the new plan starts immediately and we charge only the prorated difference for this billing period.",
        [
            "How do I upgrade to Plus?",
            "I want to move from Free to a paid plan",
            "where is the upgrade button",
            "I'm halfway through my monthly cycle on Plus and would like Team now. Do I pay the full price again or only part of it, and where do I switch?",
            "If I upgrade today, am I charged the full month?",
        ],
    ),
    "cancel-subscription": (
        "Go to Settings > Account > Plan and choose Cancel subscription; you keep Plus until the end of the paid period and then move to Free without losing notes.",
        [
            "How do I cancel my subscription?",
            "I want to stop paying for Plus",
            "cancel my plan please, no longer need it",
            "Money is tight this year so I'd like to end my paid membership. Will my notes disappear the moment I cancel?",
            "Hi, where is the option to stop the auto renewal? I can't find it anywhere in the app.",
        ],
    ),
    "refund": (
        "We refund any charge made in the last 14 days: reply with the last four digits of the card or the invoice number and the refund reaches you within 5 to 10 business days.",
        [
            "Can I get a refund?",
            "I was charged by mistake and want my money back",
            "refund for the annual plan I just bought",
            "My son clicked through the upgrade screen on the family tablet last Tuesday without asking. Could that payment be reversed?",
            "What is your refund policy for subscriptions",
        ],
    ),
    "invoice": (
        "Download every invoice from Settings > Account > Billing history; to add a company name or VAT number, edit Billing details before the next charge.",
        [
            "Where can I find my invoices?",
            "I need a receipt for my company",
            "how do I add my VAT number to invoices",
            "Our accountant is asking for proper invoices for the last six months of the subscription, with our business name on them. Where do I get those?",
            "Can I download past receipts as PDF?",
        ],
    ),
    "payment-failed": (
        "Update your card in Settings > Account > Billing and press Retry payment; we keep your Plus features for 7 days while a payment is failing.",
        [
            "My payment failed",
            "card declined when renewing",
            "why did my subscription payment not go through",
            "Got an email saying the renewal charge bounced because my card expired last month. Do I lose Plus right away, and how do I fix the payment?",
            "Your system says my payment was declined but my bank says all is fine. What should I do?",
        ],
    ),
    "storage-full": (
        "Check usage in Settings > Account > Storage; empty the Trash, remove large attachments, or upgrade to Plus for 50 GB.",
        [
            "It says my storage is full",
            "I ran out of space on the free plan",
            "how to free up storage",
            "A red banner keeps telling me I'm over my quota and new scans won't upload. I mostly keep text notes, so what is eating the space?",
            "storage limit reached?? what now",
        ],
    ),
    "restore-deleted": (
        "Deleted notes stay in Trash for 30 days: open Trash in the sidebar, select the note and choose Restore.",
        [
            "I deleted a note by accident",
            "How do I recover a deleted notebook?",
            "can deleted notes be brought back",
            "While cleaning up yesterday I removed a folder of meeting minutes that I actually still need. Is it gone forever?",
            "Where does a note go after I delete it?",
        ],
    ),
    "version-history": (
        "Open the note and choose More > Version history; Plus keeps every version for a year and Free keeps the last 7 days.",
        [
            "Can I see older versions of a note?",
            "someone overwrote my note, how do I go back",
            "is there a revision history",
            "A coworker pasted over half of our project plan by mistake this afternoon. Is there a way to get the text as it was this morning?",
            "How far back does note history go on the free plan compared to paid",
        ],
    ),
    "share-note": (
        "Open the note, press Share, and invite people by e-mail as viewers or editors, or create a link with Anyone with the link can view.",
        [
            "How do I share a note with a colleague?",
            "Can I send someone a link to my note",
            "share notebook with my team",
            "My sister doesn't use Driftnote but I want her to see our holiday packing list. Can she open it without making an account?",
            "What's the difference between inviting someone and sending them a view link?",
        ],
    ),
    "permissions": (
        "Open Share on the note or notebook, then use the role menu next to each person to switch between Viewer and Editor or remove them.",
        [
            "How do I change what someone can do with my shared note?",
            "make a collaborator read-only",
            "remove access for a person",
            "I invited an intern as an editor on our handbook and now I'd rather they could only read it. Where do I change their role?",
            "Can I give one person edit rights and everyone else view only?",
        ],
    ),
    "api-key": (
        "Create a key in Settings > Developer > API keys, copy it once, and send it as a Bearer token; keys can be revoked anytime from the same page.",
        [
            "How do I get an API key?",
            "Where do I create a token for the API",
            "I need programmatic access to my notes",
            "I'm writing a small Python script that appends my daily stand-up to a note every morning. How does authentication work for your API?",
            "Which header does the REST API expect the secret in?",
        ],
    ),
    "rate-limits": (
        "The API allows 60 requests per minute on Free and 600 on Plus and Team; a 429 response includes a Retry-After header telling you when to try again.",
        [
            "What are the API rate limits?",
            "I'm getting 429 errors from the API",
            "how many requests per minute can I make",
            "Our nightly sync job started failing halfway through with Too Many Requests. Is there a documented cap, and does a paid plan raise it?",
            "Is the API throttled on the free tier",
        ],
    ),
    "import-evernote": (
        "Export your notebooks from Evernote as .enex files, then in Driftnote choose File > Import > Evernote and select them; tags and attachments come along.",
        [
            "Can I import from Evernote?",
            "How do I move my notes from Evernote",
            "migrate enex files into driftnote",
            "I have about ten years of stuff in Evernote and I'm scared of losing tags and attached PDFs when I switch. What's the safest way to bring it all over?",
            "does the evernote import keep my tags",
        ],
    ),
    "import-notion": (
        "Export your Notion workspace as Markdown & CSV, unzip it, then choose File > Import > Markdown folder in Driftnote.",
        [
            "How do I import my Notion pages?",
            "moving from notion, what's the process",
            "bring notion export into driftnote",
            "Our team wiki currently lives in Notion and we would like it in Driftnote by next sprint. Which export format should we pick on their side?",
            "Can Driftnote read a Notion export zip directly?",
        ],
    ),
    "delete-account": (
        "Go to Settings > Account > Delete account and confirm with your password; everything is erased within 30 days, so export your notes first.",
        [
            "How do I delete my account?",
            "I want all my data removed",
            "close my driftnote account permanently",
            "Under GDPR I'd like my account and every note you hold erased. How do I start that and how long does it take?",
            "If I delete my profile, is there any way to undo it later?",
        ],
    ),
    "change-email": (
        "Go to Settings > Account > E-mail, enter the new address and confirm the link we send to it; your login changes once it is confirmed.",
        [
            "How do I change my e-mail address?",
            "update the email on my account",
            "I switched jobs and need a new login email",
            "My university address expires in June and that's what I registered with. Can I move the account over to my personal mailbox before then?",
            "Can the address I use to sign in be changed, or do I need a new account?",
        ],
    ),
    "desktop-install": (
        "Download the app for Windows, macOS or Linux from driftnote.app/download and sign in with your account; your notes sync down automatically.",
        [
            "Is there a desktop app?",
            "How do I install Driftnote on Windows",
            "linux version available?",
            "I only ever used the browser version but would love something in my Mac dock. Do you make a native program for computers?",
            "Where do I download the macOS client",
        ],
    ),
    "mobile-app": (
        "Install Driftnote from the App Store or Google Play and sign in; turn on Settings > Offline if you want notes available without signal.",
        [
            "Do you have a mobile app?",
            "how do I get driftnote on android",
            "iphone app where",
            "Just bought a new Pixel and want my shopping lists on it. Is there an official app, or do I use the website on my phone?",
            "Does Driftnote run on an iPad?",
        ],
    ),
    "dark-mode": (
        "Choose Settings > Appearance > Theme and select Dark, Light or Match system; each device keeps its own choice.",
        [
            "Is there a dark mode?",
            "how do I switch the theme to dark",
            "the app is too bright at night",
            "I read my notes in bed and the white background is killing my eyes. Can the colours be inverted somehow?",
            "Can Driftnote follow my operating system's night theme automatically?",
        ],
    ),
    "search-tips": (
        "Use the search bar with quotes for exact phrases, tag:name to filter by tag and notebook:name to search one notebook; text inside PDFs and images is searchable on Plus.",
        [
            "How do I search my notes better?",
            "can I search inside a specific notebook",
            "search by tag",
            "Searching for budget gives me two hundred results from every notebook. Are there filters or operators to narrow it down?",
            "Does search look inside attached pdf files",
        ],
    ),
    "tags": (
        "Type # followed by a name in any note to add a tag, and find all tagged notes under Tags in the sidebar; rename or merge tags there too.",
        [
            "How do tags work?",
            "can I organize notes with tags",
            "rename a tag everywhere",
            "Over the years I ended up with both #recipe and #recipes on hundreds of notes. Is there a way to combine them into one?",
            "Is there a page listing all my tags?",
        ],
    ),
    "attachments-size": (
        "Each attachment can be up to 25 MB on Free and 200 MB on Plus and Team; larger files can be linked from cloud storage instead.",
        [
            "What's the maximum attachment size?",
            "my video won't upload to a note",
            "file too large error when attaching",
            "I tried to drop a 90 MB screen recording into my meeting notes and it just fails. Is there a limit on how big an attached file can be?",
            "What is the upload cap per file on Plus",
        ],
    ),
    "team-invite": (
        "Team admins invite people from Admin > Members > Invite; each new member adds one seat to the next invoice.",
        [
            "How do I add people to our Team workspace?",
            "invite my coworkers to the team plan",
            "adding members to team",
            "Two new engineers start on Monday. As the workspace owner, how do I get them in, and what does it do to our bill?",
            "Does each person I invite to our Team cost an extra seat?",
        ],
    ),
    "team-admin-remove": (
        "In Admin > Members, open the person's menu and choose Remove; their shared notes stay in the workspace and the seat is freed on the next invoice.",
        [
            "How do I remove someone from our team?",
            "a colleague left the company, remove user",
            "free up a seat in team plan",
            "An employee finished their contract last Friday. If I take them out of the workspace, do the documents they wrote vanish with them?",
            "As an admin, can I kick a member out and keep their notes?",
        ],
    ),
    "sso": (
        "Team workspaces support SAML single sign-on with Okta, Azure AD and Google: set it up in Admin > Security > SSO with your identity provider's metadata URL.",
        [
            "Do you support SSO?",
            "can we log in with Okta",
            "how to configure SAML for our team",
            "Our security team will only approve new software if staff sign in through our Azure identity provider. Is that something Driftnote can do?",
            "Does the Team plan work with Google Workspace single sign on?",
        ],
    ),
    "encryption": (
        "All notes are encrypted in transit with TLS and at rest with AES-256; for extra protection, lock a note with a passphrase under More > Encrypt note.",
        [
            "Are my notes encrypted?",
            "how secure is my data",
            "can I password protect a single note",
            "I keep some medical information in one note and want it protected by an extra secret on top of my login. Is that supported?",
            "Do you encrypt data at rest, and with which algorithm?",
        ],
    ),
    "login-loop": (
        "Clear the app's cache under Settings > Advanced > Reset local data, or in the browser clear cookies for driftnote.app, then sign in again.",
        [
            "The app keeps asking me to log in",
            "stuck in a login loop",
            "I log in and it kicks me out again",
            "Every time I enter my password in Chrome the page reloads and shows the sign-in screen again. It has been doing this all week.",
            "After sign in the browser just sends me back to the login page, over and over.",
        ],
    ),
    "slow-app": (
        "Update to the latest version, then try Settings > Advanced > Rebuild search index; very large notebooks load faster with Offline > Keep all notebooks turned off.",
        [
            "The app is very slow",
            "driftnote takes forever to open",
            "typing lags in big notes",
            "Since I passed a few thousand notes the desktop client needs almost a minute to start and the cursor stutters. Anything I can tune?",
            "Search has become sluggish on my desktop, is there a way to speed it up?",
        ],
    ),
    "templates": (
        "Choose New note > From template to pick a built-in template, or save any note as your own with More > Save as template.",
        [
            "Are there note templates?",
            "how do I make my own template",
            "reuse a note layout",
            "Every Monday I recreate the same weekly review structure by hand. Can I store it once and start new notes from it?",
            "Can I save a note as a template and reuse it later?",
        ],
    ),
    "reminders": (
        "Open a note, press the bell icon and set a date and time; reminders arrive as notifications on every device where you are signed in.",
        [
            "Can I set reminders on notes?",
            "how do I get notified about a note later",
            "due dates for notes",
            "I keep forgetting to renew my passport even though it's written in a note. Can Driftnote ping me about it next month?",
            "Is it possible to get an alert on my phone at a set time for a specific note?",
        ],
    ),
    "web-clipper": (
        "Install the Driftnote Web Clipper for Chrome, Firefox or Edge from driftnote.app/clipper, then click its icon to save a page, a selection or a screenshot.",
        [
            "Is there a browser extension?",
            "how do I save web pages to driftnote",
            "web clipper for firefox",
            "When I find an interesting article I copy and paste it into a note, which is tedious. Is there a faster way to grab a whole page?",
            "Does the clipper work in Microsoft Edge?",
        ],
    ),
    "student-discount": (
        "Students get Plus at half price: apply at driftnote.app/students with your school e-mail and the discount applies to the next renewal.",
        [
            "Do you have a student discount?",
            "I'm a student, is Plus cheaper for me",
            "education pricing",
            "I just started a master's programme and money is tight. Do you offer any reduced rate for people enrolled at a university?",
            "How do I apply for the student price?",
        ],
    ),
    "data-location": (
        "Notes are stored in data centres in the EU (Frankfurt) by default; Team workspaces can choose US or EU storage in Admin > Data residency.",
        [
            "Where is my data stored?",
            "are servers in the EU",
            "can we keep our data in the US",
            "Our compliance officer needs to know in which country the servers holding our documents are located before we sign. Can you tell me?",
            "Which region hosts Driftnote data, and can a Team choose it?",
        ],
    ),
    "markdown-editing": (
        "The editor understands Markdown shortcuts as you type, such as # for headings and - for lists; switch a note to raw Markdown with View > Source mode.",
        [
            "Can I write in Markdown?",
            "does the editor support markdown syntax",
            "view the source markdown of a note",
            "I'm used to typing asterisks and hashes for formatting in other tools. Will Driftnote understand that, and can I see the plain text underneath?",
            "Is there a source view showing the raw markdown?",
        ],
    ),
    "sync-conflict": (
        "When the same note is edited on two offline devices, Driftnote keeps both: the second copy appears next to it with (conflict) in the title, so merge the text and delete the copy.",
        [
            "Why do I have a note called (conflict)?",
            "duplicate note appeared after syncing",
            "I edited the same note on my phone and tablet while offline and now there are two of them. Which one wins?",
            "what does conflicted copy mean in driftnote",
            "Why did Driftnote create a second copy of my shopping list after I came back online?",
        ],
    ),
    "device-limit": (
        "The Free plan syncs up to 3 devices; remove an old one in Settings > Account > Devices or upgrade to Plus for unlimited devices.",
        [
            "It says I have reached the device limit",
            "How many devices can I use on the free plan?",
            "I got a new laptop and now Driftnote refuses to sign me in because of too many devices. My old one is already recycled, what do I do?",
            "can I unlink an old phone from my account",
            "max number of devices??",
        ],
    ),
    "annual-billing": (
        "Switch to yearly billing in Settings > Account > Plan > Billing period; Plus costs $60 a year instead of $72, and the change applies at your next renewal.",
        [
            "Is there an annual plan?",
            "Can I pay yearly instead of monthly?",
            "I've been paying every month for a while and I'm sure I'll stay for years. Is there a cheaper option if I pay up front?",
            "how much is plus per year",
            "Do you give a discount for paying twelve months at once",
        ],
    ),
    "change-payment-method": (
        "Go to Settings > Account > Billing > Payment method and add the new card or PayPal account; it is used from the next charge and the old one is removed.",
        [
            "How do I change my credit card?",
            "I want to pay with PayPal from now on",
            "My bank sent me a replacement card with a new number. Where do I update it so next month's renewal doesn't fail?",
            "update billing card details",
            "switching from my visa to a mastercard, how?",
        ],
    ),
    "downgrade-plan": (
        "Choose Settings > Account > Plan > Change plan and pick Free; the switch happens at the end of the paid period and notes over the limits stay readable but stop syncing new changes.",
        [
            "How do I go back to the free plan?",
            "downgrade from Plus to Free",
            "If I drop down to the free tier, what happens to the 20 GB of notes I have, will they be deleted?",
            "Can I switch our account from Team to Plus?",
            "what happens to my notes if I stop plus and go free",
        ],
    ),
    "full-backup": (
        "Choose Settings > Account > Export all data to get a .zip of every notebook with attachments; we e-mail you a download link that works for 7 days.",
        [
            "How do I back up all my notes?",
            "download everything in my account at once",
            "Before I reinstall my computer I'd like a complete copy of all notebooks and files on an external disk. Is there a single button for that?",
            "is there a full data export",
            "I'd like an archive of my entire account including attachments, how do I request it?",
        ],
    ),
    "import-onenote": (
        "Install the desktop app on Windows, then choose File > Import > OneNote and sign in to Microsoft; each OneNote section becomes a Driftnote notebook.",
        [
            "Can I import from OneNote?",
            "moving my onenote notebooks over",
            "My whole thesis research is spread over OneNote sections and pages. How would that be organised after bringing it into Driftnote?",
            "onenote migration tool?",
            "Does importing from OneNote work on a Mac, or do I need Windows?",
        ],
    ),
    "import-apple-notes": (
        "On your Mac, open the Driftnote desktop app and choose File > Import > Apple Notes; allow access when macOS asks, and folders become notebooks.",
        [
            "How do I import Apple Notes?",
            "I have hundreds of notes in the Notes app on my iPhone and Mac, can they be moved over?",
            "transfer from apple notes to driftnote",
            "Is there a way to get my iCloud notes in",
            "Switching from the built-in Mac notes app. What is the import path?",
        ],
    ),
    "leave-shared-notebook": (
        "Right-click the shared notebook in the sidebar and choose Leave notebook; it disappears from your account but stays with its owner and other members.",
        [
            "How do I leave a shared notebook?",
            "remove a notebook someone shared with me",
            "A former client still has me on their project notebook and it clutters my sidebar. Can I get out of it without asking them?",
            "stop receiving updates from a shared notebook",
            "How can I remove myself from a notebook my old manager shared?",
        ],
    ),
    "disable-public-link": (
        "Open Share on the note and switch Anyone with the link off; the old link stops working at once, and you can create a new one later.",
        [
            "How do I turn off a public link?",
            "I shared a note link by mistake, how do I make it private again?",
            "A link to my notes got posted in a public forum. I need it dead right now, how?",
            "revoke a share link",
            "Can I stop people who already have my shared URL from opening the note?",
        ],
    ),
    "revoke-api-key": (
        "Go to Settings > Developer > API keys and press Revoke next to the key; it stops working immediately, so create a new key and update your scripts.",
        [
            "How do I revoke an API key?",
            "I accidentally pushed my API token to a public GitHub repo. What should I do?",
            "delete an old api key",
            "rotate my developer token",
            "An ex-contractor still has one of our API keys. How do we disable it?",
        ],
    ),
    "webhooks": (
        "Add a webhook in Settings > Developer > Webhooks with your HTTPS URL and choose the events; each call is signed with the X-Driftnote-Signature header.",
        [
            "Do you support webhooks?",
            "Can my server be notified when a note changes?",
            "We want our ticketing system to react whenever someone updates a note in a certain notebook. Is there a push mechanism instead of polling?",
            "how do I verify webhook requests are really from driftnote",
            "Which events can trigger a Driftnote webhook?",
        ],
    ),
    "suspicious-login": (
        "Open Settings > Security > Active sessions, sign out every session you do not recognise and change your password; turning on two-factor authentication stops this happening again.",
        [
            "I got a sign-in alert from a country I've never been to",
            "someone else might be using my account",
            "Is my account hacked? There are notes I didn't write.",
            "This morning I received an email about a new login from a device I don't own. What steps should I take?",
            "How do I see which devices are currently logged in to my account?",
        ],
    ),
    "change-password": (
        "Go to Settings > Security > Change password, enter your current password and the new one; all other devices are signed out and need the new password.",
        [
            "How do I change my password?",
            "I want to set a new password even though I remember the old one",
            "update my password",
            "I reused my password on a site that was breached so I'd like to pick a fresh one for Driftnote. Will that log me out everywhere?",
            "Where in settings do I pick a different password",
        ],
    ),
    "regenerate-backup-codes": (
        "Open Settings > Security > Backup codes and choose Generate new codes; the old codes stop working, so store the new ten somewhere safe.",
        [
            "How do I get new backup codes?",
            "I've used most of my 2FA recovery codes",
            "Where can I see my backup codes again?",
            "My printed list of emergency codes went through the washing machine. Can I create a new set?",
            "Can I invalidate my old recovery codes and make fresh ones?",
        ],
    ),
    "plus-trial": (
        "New accounts can try Plus free for 14 days from Settings > Account > Plan > Start trial; we remind you 3 days before it ends and nothing is charged if you cancel.",
        [
            "Is there a free trial of Plus?",
            "can I test the paid features before buying",
            "Will I be charged automatically when the trial ends? I don't want a surprise bill.",
            "how long is the trial",
            "Do I need to enter a card to start the 14 day Plus trial?",
        ],
    ),
    "keyboard-shortcuts": (
        "Press Ctrl+/ (Cmd+/ on Mac) to see every shortcut, and change them in Settings > Keyboard; Ctrl+N makes a new note and Ctrl+K opens quick search.",
        [
            "What are the keyboard shortcuts?",
            "Can I change a hotkey?",
            "I'm a heavy keyboard user and hate reaching for the mouse. Is there a list of key combinations somewhere in the app?",
            "shortcut for new note on mac",
            "Is there a cheat sheet of hotkeys inside Driftnote?",
        ],
    ),
    "ocr-images": (
        "On Plus and Team, text in images and scanned PDFs is recognised automatically within a few minutes of upload and becomes searchable; Free does not include text recognition.",
        [
            "Can Driftnote read text in my photos?",
            "Is there OCR for scanned documents?",
            "I photographed a whiteboard after our meeting but searching for words on it finds nothing. Should that work?",
            "search doesn't find words in my scanned receipts",
            "Why can't I search the text on an image I attached on the Free plan?",
        ],
    ),
    "app-lock": (
        "Turn on Settings > Security > App lock on the mobile app to require a PIN, Face ID or fingerprint whenever Driftnote opens.",
        [
            "Can I lock the app with a PIN?",
            "Does the mobile app support Face ID?",
            "My kids borrow my phone a lot and I don't want them reading my journal. Can the app ask for a code when it opens?",
            "fingerprint unlock for driftnote android",
            "Is it possible to protect the iPhone app so it asks for my face before showing notes",
        ],
    ),
    "empty-trash": (
        "Open Trash in the sidebar and choose Empty trash, or right-click one note and choose Delete forever; permanently deleted notes cannot be restored.",
        [
            "How do I permanently delete notes?",
            "empty the trash",
            "I want sensitive notes gone for good instead of waiting 30 days. Is there a way to erase them immediately?",
            "delete forever option?",
            "Trash has hundreds of old notes in it, can I clear it all in one go?",
        ],
    ),
    "move-notes": (
        "Select the notes in the list (Shift or Ctrl to pick several), then drag them onto a notebook in the sidebar or choose More > Move to.",
        [
            "How do I move a note to another notebook?",
            "Can I move many notes at once?",
            "I dumped forty notes into my Inbox notebook during a conference. What's the quickest way to file them under Work?",
            "drag notes between notebooks not working",
            "How can I file a note into a different folder",
        ],
    ),
    "sign-in-with-google": (
        "On the login page choose Continue with Google or Continue with Apple; to add it to an existing account, link it first in Settings > Security > Connected logins.",
        [
            "Can I sign in with Google?",
            "Is there Sign in with Apple?",
            "I made my account with an email and password but would rather use my Google login now. Can I connect the two?",
            "log in via google account",
            "can I link my Apple ID to an existing Driftnote account",
        ],
    ),
    "realtime-collab": (
        "Everyone with Editor access can edit a shared note at the same time; you see their cursors live, and changes merge automatically as long as you are online.",
        [
            "Can two people edit the same note at once?",
            "real time collaboration?",
            "During our planning call four of us want to type into the same agenda. Will we overwrite each other?",
            "Do I see other people's cursors in a shared note",
            "how does simultaneous editing work with colleagues",
        ],
    ),
    "account-recovery-no-email": (
        "Use Account recovery on the login page and choose I can't access my e-mail; we confirm ownership with your last invoice or a recent note title and reply within 2 business days.",
        [
            "I no longer have access to the email on my account",
            "my old work email was deleted and I can't reset my password",
            "The address I signed up with belonged to a company that shut down. I know my notes are still there. How can I prove the account is mine?",
            "recover account without email",
            "Lost access to both my old mailbox and my password. Is there any other way to verify who I am?",
        ],
    ),
}

# A few customer openers and closers, added by a seeded draw, so tone and length vary the way
# real tickets do; they are short, so they never make two questions look alike.
OPENERS = ["Hi, ", "Hello! ", "Hey, ", "Good morning. ", "Hi support, "]
CLOSERS = [" Thanks!", " Thank you.", " Cheers", " Thanks in advance.", " Appreciate it!"]


def answer(topic: str) -> str:
    """The house-style reply for a topic."""
    return f"{GREETING} {TOPICS[topic][0]} {SIGNOFF}"


def clean_records(rng: random.Random) -> list[dict]:
    """One record per customer question, with a seeded opener/closer on about a third."""
    records = []
    for topic, (_, questions) in TOPICS.items():
        for index, question in enumerate(questions):
            if rng.random() < 0.35:
                question = (
                    rng.choice(OPENERS) + question[0].lower() + question[1:]
                    if rng.random() < 0.5
                    else question + rng.choice(CLOSERS)
                )
            records.append(
                {"id": f"{topic}-{index}", "prompt": question, "response": answer(topic)}
            )
    return records


def pii_records() -> list[dict]:
    """Customer messages carrying PII (see PLANTED.md for the expected counts by type)."""
    return [
        {
            "id": "pii-email",
            "prompt": "My login is jane.doe@example.com and the reset mail never arrives, I checked spam twice.",
            "response": answer("reset-password"),
        },
        {
            "id": "pii-email-response",
            "prompt": "Please move my account to my new work address, the old one is being shut down next week.",
            "response": f"{GREETING} We sent the confirmation link to tom.becker@example.org; go to Settings > Account > E-mail if you want to use a different address. {SIGNOFF}",
        },
        {
            "id": "pii-phone",
            "prompt": "Please call me back at +1 (415) 555-0132 about my refund, I'd rather sort this out by phone.",
            "response": answer("refund"),
        },
        {
            "id": "pii-phone-uk",
            "prompt": "Nobody answers my emails about the double charge. My number is 020 7946 0958, can a human ring me?",
            "response": answer("refund"),
        },
        {
            "id": "pii-phone-dashes",
            "prompt": "Text the recovery code to 415-555-0199 instead, my authenticator phone is broken.",
            "response": answer("lost-2fa"),
        },
        {
            "id": "pii-card",
            "prompt": "You charged my card 4111 1111 1111 1111 twice this month, I want one of them refunded.",
            "response": answer("refund"),
        },
        {
            "id": "pii-card-dashes",
            "prompt": "Please switch my billing to the card 5555-5555-5555-4444, expiry 09/29, the old one was stolen.",
            "response": answer("change-payment-method"),
        },
        {
            "id": "pii-not-card",
            "prompt": "My order number is 1234 5678 9012 3456, where is the invoice for it?",
            "response": answer("invoice"),
        },
        {
            "id": "pii-ip",
            "prompt": "Sync fails only from my office network, our gateway IP is 203.0.113.42 if that helps.",
            "response": answer("sync-not-working"),
        },
        {
            "id": "pii-ip-response",
            "prompt": "I got an alert about a login I don't recognise, can you tell me where it came from?",
            "response": f"{GREETING} That sign-in came from 198.51.100.7; open Settings > Security > Active sessions, sign out that session and change your password. {SIGNOFF}",
        },
        {
            "id": "pii-iban",
            "prompt": "Can you refund to my bank account DE89 3704 0044 0532 0130 00 instead of the card?",
            "response": answer("refund"),
        },
        {
            "id": "pii-iban-compact",
            "prompt": "For the Team invoice we pay by transfer from GB82WEST12345698765432, please note that on future invoices.",
            "response": answer("invoice"),
        },
    ]


LONG_STORY = (
    "Let me explain everything from the beginning, because the problem has a long history. "
    "I started using Driftnote on my old laptop, then moved to a new phone, then a tablet. "
)


def malformed_records() -> dict[str, list[dict]]:
    """Rows that break the data contract, by the file they are written to."""
    return {
        "support_tickets.jsonl": [
            {"id": "bad-missing-response", "prompt": "How do I export to Word?"},
            {
                "id": "bad-null-response",
                "prompt": "Is there a Driftnote app for smart watches?",
                "response": None,
            },
            {"id": "bad-empty-prompt", "prompt": "   ", "response": answer("dark-mode")},
            {"id": "bad-too-long", "prompt": LONG_STORY * 25, "response": answer("slow-app")},
            {
                "id": "bad-number-response",
                "prompt": "What is the API rate limit on Free?",
                "response": 60,
            },
            {
                "id": "bad-list-response",
                "prompt": "Which export formats exist?",
                "response": ["Markdown", "PDF"],
            },
            {"id": "bad-number-prompt", "prompt": 404, "response": answer("login-loop")},
        ],
        "partner_feed.jsonl": [
            {"id": "bad-empty-prompt-2", "prompt": "", "response": answer("tags")},
            {"id": "bad-missing-prompt", "response": answer("templates")},
            {
                "id": "bad-dict-response",
                "prompt": "what plans are there",
                "response": {"text": "see pricing"},
            },
            {"id": "bad-null-prompt", "prompt": None, "response": answer("plus-trial")},
        ],
        "legacy_export.csv": [
            {"id": "bad-missing-response-2", "prompt": "How do I print a note?", "response": ""},
            {"id": "bad-whitespace-prompt", "prompt": "\n\t \n", "response": answer("reminders")},
        ],
        "chat_sessions.json": [
            {
                "id": "bad-role-order",
                "messages": [
                    {"role": "assistant", "content": answer("tags")},
                    {"role": "user", "content": "How do tags work?"},
                ],
            },
            {
                "id": "bad-ends-with-user",
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": "My sync is broken again"},
                    {"role": "assistant", "content": answer("sync-not-working")},
                    {"role": "user", "content": "Still not working after signing out, what next?"},
                ],
            },
            {
                "id": "bad-two-user-turns",
                "messages": [
                    {"role": "user", "content": "Hello?"},
                    {"role": "user", "content": "Is anyone there? My notes are gone"},
                    {"role": "assistant", "content": answer("restore-deleted")},
                ],
            },
            {
                "id": "bad-unknown-role",
                "messages": [
                    {"role": "customer", "content": "Do you have a Linux app?"},
                    {"role": "assistant", "content": answer("desktop-install")},
                ],
            },
            {
                "id": "bad-too-long-chat",
                "messages": [
                    {"role": "user", "content": LONG_STORY * 30},
                    {"role": "assistant", "content": answer("sync-not-working")},
                ],
            },
        ],
    }


def near_duplicate(record: dict, new_id: str) -> dict:
    """A copy with a typo in the last word, other end punctuation and the response's spacing
    touched: one word 3-shingle changes, so a prompt of 20+ words stays above Jaccard 0.8."""
    words = record["prompt"].rstrip("?!. ").split(" ")
    last = words[-1]
    words[-1] = last[0] + last[2] + last[1] + last[3:] if len(last) > 3 else last + last[-1]
    return dict(
        record,
        id=new_id,
        prompt=" ".join(words) + ("!!" if record["prompt"].endswith("?") else "?"),
        response=record["response"].replace("Hi there, ", "Hi there,  "),
    )


def insert_after(rows: list[dict], original: dict, copy: dict, rng: random.Random) -> None:
    """Put a planted copy somewhere after its original, so dedup keeps the original."""
    rows.insert(rng.randrange(rows.index(original) + 1, len(rows) + 1), copy)


def chat(record: dict, with_system: bool) -> dict:
    """A one-turn chat record from an instruction record."""
    head = [{"role": "system", "content": SYSTEM}] if with_system else []
    return {
        "id": f"chat-{record['id']}",
        "messages": head
        + [
            {"role": "user", "content": record["prompt"]},
            {"role": "assistant", "content": record["response"]},
        ],
    }


def two_turn_chat(first: dict, second: dict) -> dict:
    """A two-turn conversation: the customer asks a follow-up on another topic."""
    return {
        "id": f"chat-{first['id']}+{second['id']}",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": first["prompt"]},
            {"role": "assistant", "content": first["response"]},
            {"role": "user", "content": "One more thing: " + second["prompt"]},
            {"role": "assistant", "content": second["response"]},
        ],
    }


def multiline(record: dict, rng: random.Random) -> dict:
    """The legacy helpdesk kept e-mail layout: salutation, body and name on separate lines."""
    name = rng.choice(["Anna", "Marco", "Priya", "Jonas", "Lena", "Sam"])
    return dict(record, prompt=f"Hello,\n\n{record['prompt']}\n\nBest regards, {name}")


def main() -> None:
    rng = random.Random(7)
    records = clean_records(rng)
    rng.shuffle(records)
    # Where each clean record goes: most to the ticket export, the rest spread like real feeds.
    tickets, chats_src, legacy, partner = (
        records[:228],
        records[228:268],
        records[268:296],
        records[296:],
    )
    one_turn = chats_src[:16] + chats_src[28:]  # chats whose only user turn is the question
    plain_legacy = legacy[1::3]  # legacy rows left without the e-mail layout below

    # Dedup keeps the first of equal texts, reading files by name and lines in order, so each
    # planted copy goes after its original: later in the same file or in a later file.
    def long(part: list[dict]) -> list[dict]:
        return [r for r in part if len(r["prompt"].split()) >= 20]

    exact_dups = [
        dict(orig, id=new)
        for new, orig in [
            ("dup-3", tickets[3]),
            ("dup-17", tickets[17]),
            ("dup-42", one_turn[2]),
            ("dup-88", one_turn[8]),
            ("dup-120", plain_legacy[1]),
        ]
    ]
    near_dups = [
        near_duplicate(orig, new)
        for new, orig in [
            ("near-5", long(tickets)[5]),
            ("near-23", long(tickets)[23]),
            ("near-61", long(tickets)[31]),
            ("near-77", long(one_turn)[3]),
        ]
    ]
    # Punctuation and case only: equal once normalized, so dedup reports an exact duplicate.
    recase = one_turn[14]
    near_dups.append(
        dict(recase, id="near-140", prompt=recase["prompt"].upper().replace("?", "!?"))
    )
    malformed = malformed_records()
    pii = pii_records()

    # A few PII records go to the other sources, so redaction is seen working on every format.
    elsewhere = {"pii-ip-response": "chat", "pii-phone-uk": "legacy", "pii-iban-compact": "partner"}
    pii_in = {
        f: [r for r in pii if elsewhere.get(r["id"]) == f] for f in ("chat", "legacy", "partner")
    }
    rows = (
        tickets + [r for r in pii if r["id"] not in elsewhere] + malformed["support_tickets.jsonl"]
    )
    rng.shuffle(rows)
    for copy, original in [(exact_dups[0], tickets[3]), (exact_dups[1], tickets[17])] + [
        (near, original)
        for near, original in zip(
            near_dups[:3], [long(tickets)[i] for i in (5, 23, 31)], strict=True
        )
    ]:
        insert_after(rows, original, copy, rng)
    for row in rows[::5]:
        if (
            isinstance(row.get("prompt"), str)
            and row["prompt"].strip()
            and not row["id"].startswith("bad-")
        ):
            row["system"] = SYSTEM
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    # Line numbers are part of the contract with the tests: invalid JSON on line 41, invalid
    # UTF-8 (Latin-1 bytes) on line 197.
    lines.insert(
        40, b'{"id": "bad-json", "prompt": "How do I export my notes?", "response": "unterminated'
    )
    lines.insert(
        196,
        b'{"id": "bad-bytes", "prompt": "caf\xe9 cr\xe8me recipe notes vanished", "response": "x"}',
    )
    (HERE / "support_tickets.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    chats = [chat(r, with_system=i % 3 != 0) for i, r in enumerate(chats_src[:16])]
    chats += [
        two_turn_chat(a, b) for a, b in zip(chats_src[16:28:2], chats_src[17:28:2], strict=True)
    ]
    chats += [chat(r, with_system=True) for r in chats_src[28:] + pii_in["chat"]]
    chats += malformed["chat_sessions.json"]
    rng.shuffle(chats)
    (HERE / "chat_sessions.json").write_text(json.dumps(chats, indent=1, ensure_ascii=False) + "\n")

    legacy_rows = [multiline(r, rng) if i % 3 == 0 else r for i, r in enumerate(legacy)]
    legacy_rows += (
        pii_in["legacy"] + exact_dups[2:4] + near_dups[3:4] + malformed["legacy_export.csv"]
    )
    rng.shuffle(legacy_rows)
    with (HERE / "legacy_export.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["id", "prompt", "response"], quoting=csv.QUOTE_ALL
        )
        writer.writeheader()
        writer.writerows(legacy_rows)

    partner_rows = (
        partner
        + pii_in["partner"]
        + exact_dups[4:]
        + near_dups[4:]
        + malformed["partner_feed.jsonl"]
    )
    rng.shuffle(partner_rows)
    partner_lines = [json.dumps(r, ensure_ascii=False) for r in partner_rows]
    (HERE / "partner_feed.jsonl").write_bytes(
        ("\ufeff" + "\r\n".join(partner_lines) + "\r\n").encode()
    )

    n_malformed = sum(len(v) for v in malformed.values()) + 2
    total = len(rows) + 2 + len(chats) + len(legacy_rows) + len(partner_rows)
    print(
        f"topics={len(TOPICS)} clean={len(records)} total={total} tickets={len(rows) + 2} "
        f"chats={len(chats)} legacy={len(legacy_rows)} partner={len(partner_rows)} "
        f"pii={len(pii)} exact_dups={len(exact_dups)} near_dups={len(near_dups)} malformed={n_malformed}"
    )


if __name__ == "__main__":
    main()
