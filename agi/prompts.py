"""Every stock prompt mailcall makes Asterisk play, in one table.

A prompt Asterisk cannot find is silence for the caller and a WARNING in
Asterisk's log nobody reads (``vm-invalid-option``, once played here, is not
in Debian's core prompts). So handlers never write a prompt name themselves:
they use these constants, and ``tests/agi/test_prompts.py`` checks that each
one is in the prompt sets docs/asterisk.md section 1 installs and links
(Debian's ``asterisk-core-sounds-en-wav`` and ``-fr-wav``, 1.6.1) and that no
handler source names a prompt outside this table.

Asterisk picks the file for the channel's language (``CHANNEL(language)``,
which every handler sets from the callee's ``language`` first).
"""

from __future__ import annotations

from types import MappingProxyType

IS_UNAVAILABLE = "vm-isunavail"
"""Stock greeting, callee unavailable (or absent): "... is unavailable"."""
IS_ON_PHONE = "vm-isonphone"
"""Stock greeting, callee busy: "... is on the phone"."""
LEAVE_MESSAGE = "vm-intro"
"""After the stock greeting: leave a message after the tone, # when done."""
BEEP = "beep"
"""Played by Asterisk itself for ``RECORD FILE ... BEEP`` (voicemail, greetings)."""
ENTER_PIN = "agent-pass"
"""Greeting menu: "please enter your password followed by the pound key"."""
WRONG_PIN = "auth-incorrect"
"""Greeting menu: the PIN was wrong."""
CHOOSE_GREETING = "vm-rec-unv"
"""Greeting menu: what to record (1 unavailable, 2 busy, 3 absence)."""
INVALID_CHOICE = "pm-invalid-option"
"""Greeting menu: a digit that is not one of the kinds offered."""
SAVED = "vm-msgsaved"
"""Greeting menu: the new greeting is kept."""
GOODBYE = "vm-goodbye"
"""Greeting menu: the call ends (done, wrong PIN three times, locked)."""

STOCK_GREETINGS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "unavailable": (IS_UNAVAILABLE, LEAVE_MESSAGE),
    "busy": (IS_ON_PHONE, LEAVE_MESSAGE),
    "absence": (IS_UNAVAILABLE, LEAVE_MESSAGE),
})
"""Played, in order, when the user has no personal or generated greeting of that kind."""

# ---- the phone menu (mailcall.phonemenu), VoiceMailMain's own prompts where they exist

ENTER_MAILBOX = "vm-login"
"""Mailbox by phone, caller not recognised: "mailbox?" (VoiceMailMain's login prompt)."""
YOU_HAVE = "vm-youhave"
NEW = "vm-INBOX"
OLD = "vm-Old"
MESSAGES = "vm-messages"
MESSAGE = "vm-message"
AND = "vm-and"
NO = "vm-no"
PRESS_1_FOR = "vm-onefor"
"""Main menu, as VoiceMailMain says it: "press 1 for" new "messages"."""
FOLDER_OPTIONS = "vm-opts"
"""Main menu: "press 2 to change folders, 0 for mailbox options"."""
HELP_EXIT = "vm-helpexit"
"""Every menu's last words: "press star for help, pound to exit"."""
TO_PREVIOUS = "vm-prev"
TO_ADVANCED = "vm-advopts"
TO_REPEAT = "vm-repeat"
TO_NEXT = "vm-next"
TO_DELETE = "vm-delete"
TO_FORWARD = "vm-toforward"
TO_SAVE = "vm-savemessage"
TO_REPLY = "vm-toreply"
TO_CALL_BACK = "vm-tocallback"
TO_ENVELOPE = "vm-tohearenv"
TO_CANCEL = "vm-tocancel"
NO_MORE = "vm-nomore"
DELETED = "vm-deleted"
ENTER_EXTENSION = "vm-extension"
"""Forward: the colleague's extension, followed by pound."""
FORWARD_OPTIONS = "vm-forwardoptions"
"""Forward: 1 to record a preface first, 2 to forward as it is."""
FORWARDED = "vm-msgforwarded"
NO_NUMBER = "vm-nonumber"
"""Call back: the caller's number is not one that can be dialled."""
NOT_AN_EXTENSION = "pbx-invalid"
SORRY = "im-sorry"
ONE_MOMENT = "one-moment-please"
TRY_LATER = "please-try-call-later"
NOT_AVAILABLE = "feature-not-avail-line"
NEW_PIN = "vm-newpassword"
"""Options, 5: "please enter your new password followed by the pound key"."""
PIN_AGAIN = "vm-reenterpassword"
PIN_MISMATCH = "vm-mismatch"
PIN_INVALID = "vm-invalid-password"
PIN_CHANGED = "vm-passchanged"
TRY_AGAIN = "vm-pls-try-again"

MENU_PHRASES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "main_menu": (PRESS_1_FOR, NEW, MESSAGES, FOLDER_OPTIONS, HELP_EXIT),
    "message_menu": (TO_PREVIOUS, TO_ADVANCED, TO_REPEAT, TO_NEXT, TO_DELETE, TO_FORWARD,
                     TO_SAVE, HELP_EXIT),
    "advanced_menu": (TO_REPLY, TO_CALL_BACK, TO_ENVELOPE, TO_CANCEL),
    "no_more": (NO_MORE,),
    "deleted": (MESSAGE, DELETED),
    "saved": (SAVED,),
    "invalid": (INVALID_CHOICE,),
    "goodbye": (GOODBYE,),
    "pin_new": (NEW_PIN,),
    "pin_again": (PIN_AGAIN,),
    "pin_invalid": (PIN_INVALID,),
    "pin_mismatch": (PIN_MISMATCH, TRY_AGAIN),
    "pin_changed": (PIN_CHANGED,),
    "not_an_extension": (NOT_AN_EXTENSION,),
})
"""Phone-menu phrases said with stock prompts only, in this order (VoiceMailMain's)."""

MENU_TEXTS: MappingProxyType[str, MappingProxyType[str, str]] = MappingProxyType({
    name: MappingProxyType(texts) for name, texts in {
        "options_menu": {
            "en": "Press 1 to record your unavailable greeting, 2 for your busy greeting. "
                  "Press 3 to set or end an absence, 4 to record your absence greeting. "
                  "Press 5 to change your PIN. Press star to return to the main menu.",
            "fr": "Pour enregistrer votre annonce d'indisponibilité, tapez 1 ; votre annonce "
                  "d'occupation, tapez 2. Pour déclarer ou terminer une absence, tapez 3 ; "
                  "pour enregistrer votre annonce d'absence, tapez 4. Pour changer votre "
                  "code, tapez 5. Pour revenir au menu principal, tapez étoile.",
        },
        "pin_rules": {
            "en": "A PIN has 4 to 12 digits.",
            "fr": "Un code a de 4 à 12 chiffres.",
        },
        "pin_refused": {
            "en": "Your profile does not let you change your PIN. Nothing was changed.",
            "fr": "Votre profil ne permet pas de changer votre code. Rien n'a été changé.",
        },
        "absence_until": {
            "en": "Type the last day of your absence, the day then the month, for example "
                  "1 2 1 2 for the 12th of December.",
            "fr": "Tapez le dernier jour de votre absence, le jour puis le mois, par exemple "
                  "1 2 1 2 pour le 12 décembre.",
        },
        "absence_four_digits": {
            "en": "Please type four digits: two for the day, two for the month.",
            "fr": "Tapez quatre chiffres : deux pour le jour, deux pour le mois.",
        },
        "absence_not_a_date": {
            "en": "This date does not exist.",
            "fr": "Cette date n'existe pas.",
        },
        "absence_backup": {
            "en": "Type the extension of the colleague who takes your calls, then pound, "
                  "or just pound for nobody.",
            "fr": "Tapez le poste du collègue qui prend vos appels, puis dièse, ou seulement "
                  "dièse pour personne.",
        },
        "absence_backup_by_it": {
            "en": "Who takes your calls is set by your administrator.",
            "fr": "Qui prend vos appels est décidé par votre administrateur.",
        },
        "absence_backup_refused": {
            "en": "Your profile does not allow this colleague to take your calls.",
            "fr": "Votre profil ne permet pas que ce collègue prenne vos appels.",
        },
        "absence_overlaps": {
            "en": "Another absence of yours is already set for these days.",
            "fr": "Une autre de vos absences est déjà enregistrée pour ces jours.",
        },
        "absence_end_menu": {
            "en": "Press 1 to end it, star to keep it.",
            "fr": "Pour la terminer, tapez 1 ; pour la garder, tapez étoile.",
        },
        "absence_ended": {
            "en": "Your absence is ended: your calls ring you again.",
            "fr": "Votre absence est terminée : vos appels sonnent de nouveau chez vous.",
        },
        "nothing_saved": {
            "en": "Nothing was saved.",
            "fr": "Rien n'a été enregistré.",
        },
        "settings_unavailable": {
            "en": "Sorry, your settings cannot be changed at the moment. Nothing was saved.",
            "fr": "Désolé, vos réglages ne peuvent pas être modifiés pour le moment. Rien n'a "
                  "été enregistré.",
        },
        "help_main": {
            "en": "Press 1 to listen to your voice messages, 2 to switch between voice "
                  "messages and e-mail, 0 for mailbox options, pound to hang up.",
            "fr": "Pour écouter vos messages vocaux, tapez 1 ; pour passer des messages "
                  "vocaux aux e-mails, tapez 2 ; pour les options, tapez 0 ; pour raccrocher, "
                  "tapez dièse.",
        },
        "help_message": {
            "en": "4 previous, 5 repeat, 6 next, 7 delete, 9 save, 8 forward to a colleague, "
                  "3 reply, call back or envelope, pound to skip or hang up.",
            "fr": "4 précédent, 5 réécouter, 6 suivant, 7 supprimer, 9 garder, 8 transférer "
                  "à un collègue, 3 répondre, rappeler ou entendre l'enveloppe, dièse pour "
                  "passer ou raccrocher.",
        },
        "not_yet": {
            "en": "This option is not available by phone yet.",
            "fr": "Cette option n'est pas encore disponible par téléphone.",
        },
        "not_allowed": {
            "en": "Your profile does not include your mailbox by phone. Please ask your "
                  "administrator.",
            "fr": "Votre profil ne comprend pas l'accès à votre messagerie par téléphone. "
                  "Adressez-vous à votre administrateur.",
        },
        "unavailable": {
            "en": "Sorry, your mailbox cannot be reached at the moment.",
            "fr": "Désolé, votre messagerie est injoignable pour le moment.",
        },
        "cannot_play": {
            "en": "This message cannot be played.",
            "fr": "Ce message ne peut pas être lu.",
        },
        "missed_call": {
            "en": "A missed call: no message was left.",
            "fr": "Un appel manqué : aucun message n'a été laissé.",
        },
        "no_reply": {
            "en": "This message cannot be answered by phone.",
            "fr": "Il n'est pas possible de répondre à ce message par téléphone.",
        },
        "not_for_mail": {
            "en": "E-mail cannot be forwarded by phone.",
            "fr": "Un e-mail ne peut pas être transféré par téléphone.",
        },
        "reply_sent": {
            "en": "Your reply has been sent.",
            "fr": "Votre réponse a été envoyée.",
        },
        "not_sent": {
            "en": "Nothing was sent.",
            "fr": "Rien n'a été envoyé.",
        },
    }.items()
})
"""Phone-menu phrases no stock prompt says: spoken by the speech engine in the caller's
language (``en``/``fr``; another language hears English). Counts, envelopes and mail
bodies are made per message by :mod:`mailcall.phonemenu.words`."""

ALL: frozenset[str] = frozenset({
    IS_UNAVAILABLE, IS_ON_PHONE, LEAVE_MESSAGE, BEEP, ENTER_PIN, WRONG_PIN,
    CHOOSE_GREETING, INVALID_CHOICE, SAVED, GOODBYE,
    ENTER_MAILBOX, YOU_HAVE, NEW, OLD, MESSAGES, MESSAGE, AND, NO, PRESS_1_FOR,
    FOLDER_OPTIONS, HELP_EXIT, TO_PREVIOUS, TO_ADVANCED, TO_REPEAT, TO_NEXT, TO_DELETE,
    TO_FORWARD, TO_SAVE, TO_REPLY, TO_CALL_BACK, TO_ENVELOPE, TO_CANCEL, NO_MORE, DELETED,
    ENTER_EXTENSION, FORWARD_OPTIONS, FORWARDED, NO_NUMBER, NOT_AN_EXTENSION, SORRY,
    ONE_MOMENT, TRY_LATER, NOT_AVAILABLE, NEW_PIN, PIN_AGAIN, PIN_MISMATCH, PIN_INVALID,
    PIN_CHANGED, TRY_AGAIN,
})
"""Every prompt above: what the prompt sets must hold."""
