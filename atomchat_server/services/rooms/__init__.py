"""The room service, one module per verb (as continuwuity splits its
timeline service into one file per operation on one service):

- ``create``: creating rooms;
- ``membership``: joining, inviting, leaving, kicking, banning, forgetting;
- ``send``: timeline events, state, redactions;
- ``read``: state, members, events, context and history pages;
- ``directory``: aliases and the public room directory;
- ``base``: the handles and the steps every verb shares.

Every change becomes an event committed through the Persister, which
applies the room authorization rules under the stream lock. Reads check
history visibility, from the reader's membership history.

``Rooms`` is the one service the rest of the server holds: each verb's
class adds its methods to the shared base, so callers see one object and
each verb is read (and changed) in its own file.
"""

from __future__ import annotations

from .create import Creating
from .directory import Directory
from .membership import Membership
from .read import Reading
from .send import Sending


class Rooms(Creating, Membership, Sending, Reading, Directory):
    """Rooms: create, membership, send, read, directory (see the modules)."""
