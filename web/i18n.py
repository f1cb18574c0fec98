"""The page's words in English and French, and which language a visitor gets.

One table, keyed by message name, so that a missing translation is a test
failure (tests/web/test_config.py) rather than an English word in a French page.
A logged-in user gets their language from the policy (``users.ID.language``, else
the organisation's); before the login, the browser's Accept-Language decides.
"""

from __future__ import annotations

from mailcall.core.policy.value_checks import LANGUAGES

TEXT: dict[str, dict[str, str]] = {
    "title": {"en": "My calls and messages", "fr": "Mes appels et messages"},
    "skip": {"en": "Skip to the content", "fr": "Aller au contenu"},
    "login.heading": {"en": "Log in", "fr": "Connexion"},
    "login.intro": {"en": "Use the address and password of your mailbox.",
                    "fr": "Utilisez l'adresse et le mot de passe de votre messagerie."},
    "login.user": {"en": "E-mail address", "fr": "Adresse e-mail"},
    "login.password": {"en": "Password", "fr": "Mot de passe"},
    "login.submit": {"en": "Log in", "fr": "Se connecter"},
    "login.failed": {"en": "Wrong address or password.",
                     "fr": "Adresse ou mot de passe incorrect."},
    "login.locked": {"en": "Too many failed attempts: try again in {minutes} minutes.",
                     "fr": "Trop d'essais infructueux : réessayez dans {minutes} minutes."},
    "login.unreachable": {"en": "The mail server cannot check passwords right now: try again "
                                "in a few minutes.",
                          "fr": "Le serveur de messagerie ne peut pas vérifier les mots de "
                                "passe pour l'instant : réessayez dans quelques minutes."},
    "login.expired": {"en": "The form had expired: please try again.",
                      "fr": "Le formulaire avait expiré : merci de réessayer."},
    "logout": {"en": "Log out", "fr": "Se déconnecter"},
    "logged_out": {"en": "You are logged out.", "fr": "Vous êtes déconnecté·e."},
    "hello": {"en": "Hello {name}", "fr": "Bonjour {name}"},
    "profile.heading": {"en": "What your profile gives you",
                        "fr": "Ce que votre profil vous donne"},
    "profile.name": {"en": "Profile: {profile}", "fr": "Profil : {profile}"},
    "choices.heading": {"en": "Your settings and where they come from",
                        "fr": "Vos réglages et leur origine"},
    "plan.heading": {"en": "If someone calls you now",
                     "fr": "Si quelqu'un vous appelle maintenant"},
    "absence.heading": {"en": "Absence", "fr": "Absence"},
    "absence.none": {"en": "No absence is set.", "fr": "Aucune absence n'est prévue."},
    "absence.from": {"en": "Away from (empty: now)", "fr": "Absent·e à partir du (vide : dès "
                                                              "maintenant)"},
    "absence.until": {"en": "Back on (date, or date and time)",
                      "fr": "De retour le (date, ou date et heure)"},
    "absence.backup": {"en": "Who takes my calls", "fr": "Qui prend mes appels"},
    "absence.until_missing": {"en": "give the day you are back, e.g. 2026-12-12",
                              "fr": "indiquez le jour de votre retour, par ex. 2026-12-12"},
    "absence.backup_hint": {"en": "a colleague's user id, or @group", "fr": "l'identifiant d'un "
                            "collègue, ou @groupe"},
    "absence.no_backup": {"en": "Nobody: my usual backups, then voicemail",
                          "fr": "Personne : mes remplaçants habituels, puis la messagerie"},
    "absence.message": {"en": "Message for callers and the auto-reply (optional)",
                        "fr": "Message pour les appelants et la réponse automatique "
                              "(facultatif)"},
    "absence.set": {"en": "Set my absence", "fr": "Enregistrer mon absence"},
    "absence.clear": {"en": "Remove this absence", "fr": "Supprimer cette absence"},
    "absence.saved": {"en": "Your absence is saved; calls and mail follow it now.",
                      "fr": "Votre absence est enregistrée ; appels et messages la suivent "
                            "dès maintenant."},
    "absence.cleared": {"en": "Your absence is removed.", "fr": "Votre absence est supprimée."},
    "absence.it": {"en": "set by IT in the policy file (ask IT to change it)",
                   "fr": "fixée par l'informatique dans le fichier de politique (demandez-lui "
                         "de la modifier)"},
    "absence.no_backup_allowed": {
        "en": "Your profile does not reroute calls while you are away: callers reach your "
              "voicemail.",
        "fr": "Votre profil ne renvoie pas les appels pendant vos absences : les appelants "
              "tombent sur votre messagerie."},
    "absence.line": {"en": "{start} to {until}", "fr": "du {start} au {until}"},
    "absence.line_backup": {"en": "{start} to {until}, calls to {backup}",
                            "fr": "du {start} au {until}, appels vers {backup}"},
    "client.heading": {"en": "Out-of-office of your mail client",
                       "fr": "Réponse automatique de votre logiciel de messagerie"},
    "client.read_at": {"en": "as read at your login, {when}",
                       "fr": "tel que lu à votre connexion, le {when}"},
    "client.overruled": {"en": "Your mail client's out-of-office is on, but while your absence "
                               "here lasts, senders get this page's reply.",
                         "fr": "La réponse automatique de votre logiciel de messagerie est "
                               "active, mais tant que dure votre absence ici, les expéditeurs "
                               "reçoivent la réponse de cette page."},
    "client.answers_until": {"en": "Your mail client's out-of-office (until {until}) answers "
                                   "mail, but calls are not rerouted: set your absence here "
                                   "to reroute calls too.",
                             "fr": "La réponse automatique de votre logiciel de messagerie "
                                   "(jusqu'au {until}) répond aux e-mails, mais les appels ne "
                                   "sont pas renvoyés : indiquez votre absence ici pour "
                                   "renvoyer aussi les appels."},
    "client.answers": {"en": "Your mail client's out-of-office answers mail, but calls are not "
                             "rerouted: set your absence here to reroute calls too.",
                       "fr": "La réponse automatique de votre logiciel de messagerie répond "
                             "aux e-mails, mais les appels ne sont pas renvoyés : indiquez "
                             "votre absence ici pour renvoyer aussi les appels."},
    "client.none": {"en": "Your mail client has no out-of-office on.",
                    "fr": "Votre logiciel de messagerie n'a pas de réponse automatique "
                          "active."},
    "client.unread": {"en": "Your mail client's out-of-office could not be read (IT can read "
                            "why in the log): this page cannot tell whether it is on.",
                      "fr": "La réponse automatique de votre logiciel de messagerie n'a pas "
                            "pu être lue (l'informatique en lit la cause dans le journal) : "
                            "cette page ne peut pas dire si elle est active."},
    "refused": {"en": "Nothing was saved: see the message next to the field.",
                "fr": "Rien n'a été enregistré : voir le message à côté du champ."},
    "refused.store": {"en": "Nothing was saved:", "fr": "Rien n'a été enregistré :"},
    "readonly": {"en": "Your settings cannot be changed right now (the settings store is "
                       "unavailable); calls and mail follow the policy. Try again later.",
                 "fr": "Vos réglages ne peuvent pas être modifiés pour l'instant (le stockage "
                       "des réglages est indisponible) ; appels et messages suivent la "
                       "politique. Réessayez plus tard."},
    "admin.link": {"en": "IT view", "fr": "Vue informatique"},
    "admin.heading": {"en": "Users' own settings (IT)",
                      "fr": "Réglages des utilisateurs (informatique)"},
    "admin.user": {"en": "User", "fr": "Utilisateur"},
    "admin.refinements": {"en": "Own settings", "fr": "Réglages propres"},
    "admin.refined": {"en": "Users with settings of their own: {count}",
                      "fr": "Utilisateurs ayant des réglages propres : {count}"},
    "admin.nothing": {"en": "none", "fr": "aucun"},
    "admin.clear": {"en": "Clear {user}'s settings", "fr": "Effacer les réglages de {user}"},
    "admin.cleared": {"en": "Settings cleared.", "fr": "Réglages effacés."},
    "admin.audit": {"en": "Audit log (latest first)", "fr": "Journal des changements (récents "
                                                        "d'abord)"},
    "admin.when": {"en": "When", "fr": "Quand"},
    "admin.field": {"en": "Setting", "fr": "Réglage"},
    "admin.change": {"en": "Change", "fr": "Changement"},
    "admin.who": {"en": "Who", "fr": "Qui"},
    "admin.from": {"en": "From", "fr": "Depuis"},
    "admin.forbidden": {"en": "This page is for IT only.",
                        "fr": "Cette page est réservée à l'informatique."},
    "home": {"en": "My page", "fr": "Ma page"},
    "on": {"en": "on", "fr": "oui"},
    "off": {"en": "off", "fr": "non"},
    "none": {"en": "none", "fr": "aucun"},
    "source.profile": {"en": "your profile ({profile})", "fr": "votre profil ({profile})"},
    "source.policy": {"en": "IT (policy file)", "fr": "l'informatique (fichier de politique)"},
    "source.user": {"en": "you, {when} ({origin})", "fr": "vous, le {when} ({origin})"},
    "source.other": {"en": "{actor}, {when} ({origin})", "fr": "{actor}, le {when} ({origin})"},
    "source.aside": {"en": "Your choice is set aside: your profile no longer allows it.",
                     "fr": "Votre choix est mis de côté : votre profil ne le permet plus."},
    # settings, in plain words
    "field.preferred_medium": {"en": "Notifications are sent by", "fr": "Notifications par"},
    "field.notify.mail": {"en": "Tell my mobile about new mail",
                          "fr": "Prévenir mon mobile des nouveaux e-mails"},
    "field.notify.voicemail": {"en": "Tell my mobile about new voicemail and fax",
                               "fr": "Prévenir mon mobile des messages vocaux et fax"},
    "field.notify.media": {"en": "Ways I may be notified", "fr": "Moyens de notification"},
    "field.notify.hours": {"en": "When I am notified", "fr": "Quand je suis prévenu·e"},
    "field.reroute.mobile": {"en": "Ring my mobile after my desk phone",
                             "fr": "Faire sonner mon mobile après mon poste"},
    "field.backups": {"en": "Who takes my unanswered calls",
                      "fr": "Qui prend mes appels sans réponse"},
    "field.greetings": {"en": "Personal greetings used", "fr": "Annonces personnelles utilisées"},
    "field.pin": {"en": "Phone PIN", "fr": "Code PIN du téléphone"},
    "hours.always": {"en": "always", "fr": "toujours"},
    "hours.office": {"en": "during office hours", "fr": "pendant les heures de bureau"},
    "hours.outside-office": {"en": "outside office hours", "fr": "hors des heures de bureau"},
    "pin.set": {"en": "set", "fr": "défini"},
    "pin.not set": {"en": "not set", "fr": "non défini"},
    "greeting.unavailable": {"en": "unavailable", "fr": "indisponible"},
    "greeting.busy": {"en": "busy", "fr": "occupé"},
    "greeting.absence": {"en": "absence", "fr": "absence"},
    # features
    "feature.voicemail": {"en": "Voicemail: callers can leave a message, which arrives in "
                                "your mailbox ({formats}).",
                          "fr": "Messagerie vocale : les appelants peuvent laisser un message, "
                                "qui arrive dans votre boîte ({formats})."},
    "feature.no_voicemail": {"en": "No voicemail.", "fr": "Pas de messagerie vocale."},
    "feature.fax": {"en": "Faxes arrive in your mailbox ({formats}).",
                    "fr": "Les fax arrivent dans votre boîte ({formats})."},
    "feature.notify": {"en": "Your mobile can be told about new {what}, by {media}, {hours}.",
                       "fr": "Votre mobile peut être prévenu des nouveaux {what}, par {media}, "
                             "{hours}."},
    "feature.no_notify": {"en": "No notifications.",
                          "fr": "Pas de notification."},
    "feature.reroute": {"en": "Calls you cannot take go on to others ({when}).",
                        "fr": "Les appels que vous ne pouvez pas prendre sont renvoyés "
                              "({when})."},
    "feature.no_reroute": {"en": "Your calls are not rerouted to colleagues.",
                           "fr": "Vos appels ne sont pas renvoyés à des collègues."},
    "feature.mobile": {"en": "Your mobile may ring after your desk phone.",
                       "fr": "Votre mobile peut sonner après votre poste."},
    "feature.greetings": {"en": "Personal greetings you may record: {kinds}.",
                          "fr": "Annonces personnelles possibles : {kinds}."},
    "feature.phone": {"en": "You can listen to your mailbox by phone with your PIN.",
                      "fr": "Vous pouvez écouter votre boîte par téléphone avec votre code "
                            "PIN."},
    "feature.auto_reply": {"en": "While you are away, mail gets an automatic reply.",
                           "fr": "Pendant vos absences, les e-mails reçoivent une réponse "
                                 "automatique."},
    "feature.locked": {"en": "Set by IT, not changeable: {what}.",
                       "fr": "Fixé par l'informatique, non modifiable : {what}."},
    "what.mail": {"en": "mail", "fr": "e-mails"},
    "what.voicemail": {"en": "voicemail", "fr": "messages vocaux"},
    "and": {"en": " and ", "fr": " et "},
    "or": {"en": " or ", "fr": " ou "},
    "cond.busy": {"en": "busy", "fr": "occupé"},
    "cond.no-answer": {"en": "no answer", "fr": "pas de réponse"},
    "cond.unavailable": {"en": "unreachable", "fr": "injoignable"},
    "cond.absent": {"en": "absent", "fr": "absent"},
    "cond.off-hours": {"en": "outside hours", "fr": "hors horaires"},
    # the plan as a sentence
    "plan.own": {"en": "Your phone rings for {seconds} s.",
                 "fr": "Votre poste sonne pendant {seconds} s."},
    "plan.then": {"en": "If you do not answer within {seconds} s: {chain}.",
                  "fr": "Si vous ne répondez pas dans les {seconds} s : {chain}."},
    "plan.absent": {"en": "You are away until {until}: your phone does not ring. "
                          "Calls go to: {chain}.",
                    "fr": "Vous êtes absent·e jusqu'au {until} : votre poste ne sonne pas. "
                          "Les appels vont vers : {chain}."},
    "plan.closed": {"en": "It is outside your opening hours: your phone does not ring. "
                          "Calls go to: {chain}.",
                    "fr": "Nous sommes hors de vos horaires : votre poste ne sonne pas. "
                          "Les appels vont vers : {chain}."},
    "plan.only": {"en": "Calls go to: {chain}.", "fr": "Les appels vont vers : {chain}."},
    "plan.none": {"en": "You have no phone extension in the policy: nobody can call you "
                        "directly.",
                  "fr": "Vous n'avez pas de poste dans la politique : personne ne peut vous "
                        "appeler directement."},
    "plan.sep": {"en": ", then ", "fr": ", puis "},
    "plan.mobile": {"en": "your mobile", "fr": "votre mobile"},
    "plan.voicemail": {"en": "voicemail", "fr": "la messagerie"},
    "plan.voicemail.absence": {"en": "voicemail with your absence greeting",
                               "fr": "la messagerie avec votre annonce d'absence"},
    "plan.voicemail.unavailable": {"en": "voicemail with your 'unavailable' greeting",
                                   "fr": "la messagerie avec votre annonce « indisponible »"},
    "plan.voicemail.busy": {"en": "voicemail with your 'busy' greeting",
                            "fr": "la messagerie avec votre annonce « occupé »"},
    "plan.voicemail.other": {"en": "voicemail of {who}", "fr": "la messagerie de {who}"},
    "plan.other_step": {"en": "another step set by IT",
                        "fr": "une autre étape fixée par l'informatique"},
    "plan.hangup": {"en": "the call ends (no voicemail)",
                    "fr": "l'appel se termine (pas de messagerie)"},
    "plan.unavailable": {"en": "The call plan cannot be shown right now.",
                         "fr": "Le plan d'appel ne peut pas être affiché pour l'instant."},
    "refused.store_down": {"en": "Nothing was saved: the settings store cannot be written right "
                                  "now (IT can read why in the log). Try again later.",
                           "fr": "Rien n'a été enregistré : le stockage des réglages ne peut pas "
                                 "être écrit pour l'instant (l'informatique en lit la cause dans "
                                 "le journal). Réessayez plus tard."},
    # the settings form
    "settings.intro": {"en": "Change what your profile lets you choose; the rest is set by IT.",
                       "fr": "Modifiez ce que votre profil vous laisse choisir ; le reste est "
                             "fixé par l'informatique."},
    "settings.now": {"en": "Now: {value}", "fr": "Actuellement : {value}"},
    "settings.source": {"en": "set by {source}", "fr": "fixé par {source}"},
    "settings.save": {"en": "Save my settings", "fr": "Enregistrer mes réglages"},
    "settings.saved": {"en": "Your settings are saved; calls and notifications follow them now.",
                       "fr": "Vos réglages sont enregistrés ; appels et notifications les "
                             "suivent dès maintenant."},
    "settings.unchanged": {"en": "Nothing was changed.", "fr": "Rien n'a été changé."},
    "settings.reset": {"en": "IT's value applies again.",
                       "fr": "La valeur de l'informatique s'applique de nouveau."},
    "settings.reset_button": {"en": "Back to IT's value", "fr": "Revenir à la valeur de "
                                                              "l'informatique"},
    "settings.reset_label": {"en": "Back to IT's value for: {label}",
                             "fr": "Revenir à la valeur de l'informatique pour : {label}"},
    "settings.refused": {"en": "Nothing was saved: see the message next to the setting.",
                         "fr": "Rien n'a été enregistré : voir le message à côté du réglage."},
    "settings.no_notify": {"en": "Your profile sends you no notifications.",
                           "fr": "Votre profil ne vous envoie pas de notification."},
    "settings.none_granted": {"en": "Your profile gives no choice here.",
                              "fr": "Votre profil ne donne pas de choix ici."},
    "settings.no_reroute": {"en": "Your profile does not reroute your calls to colleagues.",
                            "fr": "Votre profil ne renvoie pas vos appels à des collègues."},
    "settings.no_backups": {"en": "IT gives you no backups to order.",
                            "fr": "L'informatique ne vous donne pas de remplaçants à ordonner."},
    "settings.order_hint": {"en": "1 is rung first; 'not used' leaves that backup out.",
                            "fr": "1 sonne en premier ; « non utilisé » retire ce remplaçant."},
    "settings.position": {"en": "Position of {name}", "fr": "Position de {name}"},
    "settings.unused": {"en": "not used", "fr": "non utilisé"},
    "settings.position_bad": {"en": "Choose a position from the list, or 'not used'.",
                              "fr": "Choisissez une position dans la liste, ou « non utilisé »."},
    "settings.readonly": {"en": "Not changeable here:", "fr": "Non modifiable ici :"},
    "medium.sms": {"en": "SMS", "fr": "SMS"},
    "medium.email": {"en": "e-mail", "fr": "e-mail"},
    "pin.intro": {"en": "The PIN opens your mailbox by phone. It is stored as a hash only: "
                        "nobody, IT included, can read it back.",
                  "fr": "Le code PIN ouvre votre boîte par téléphone. Il n'est gardé que sous "
                        "forme d'empreinte : personne, informatique comprise, ne peut le "
                        "relire."},
    "pin.new": {"en": "New PIN (4 to 12 digits)", "fr": "Nouveau code PIN (4 à 12 chiffres)"},
    "pin.again": {"en": "The same PIN again", "fr": "Le même code PIN, encore"},
    "pin.submit": {"en": "Change my PIN", "fr": "Changer mon code PIN"},
    "pin.saved": {"en": "Your new PIN is saved; use it at your next call.",
                  "fr": "Votre nouveau code PIN est enregistré ; utilisez-le dès votre prochain "
                        "appel."},
    "pin.differ": {"en": "The two PINs differ: type the same PIN twice.",
                   "fr": "Les deux codes diffèrent : tapez deux fois le même code."},
    "pin.format": {"en": "A PIN is 4 to 12 digits, nothing else.",
                   "fr": "Un code PIN fait 4 à 12 chiffres, rien d'autre."},
    "error.page": {"en": "Something went wrong on our side; IT can read why in the log.",
                   "fr": "Une erreur s'est produite de notre côté ; l'informatique peut en "
                         "lire la cause dans le journal."},
    "error.csrf": {"en": "This form had expired or did not come from this page: nothing was "
                         "saved. Please try again.",
                   "fr": "Ce formulaire avait expiré ou ne venait pas de cette page : rien n'a "
                         "été enregistré. Merci de réessayer."},
}


def negotiate(accept_language: str | None, default: str = "en") -> str:
    """The best of LANGUAGES for an Accept-Language header (RFC 9110 §12.5.4)."""
    best, best_q = default, -1.0
    for n, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        lang = tag.strip().lower().split("-")[0]
        if lang in LANGUAGES and q > 0 and q - n * 1e-6 > best_q:
            best, best_q = lang, q - n * 1e-6
    return best


def user_language(language: str | None, organisation: str) -> str:
    for tag in (language, organisation):
        lang = (tag or "").lower().split("-")[0]
        if lang in LANGUAGES:
            return lang
    return "en"


class Words:
    """``t("key", name=...)`` in one language; the values are escaped by the templates."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else "en"

    def __call__(self, key: str, **values: object) -> str:
        text = TEXT[key][self.lang]
        return text.format(**values) if values else text
